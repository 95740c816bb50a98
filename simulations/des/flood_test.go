package des

import (
	"encoding/binary"
	"time"
)

// flood is a toy protocol for testing the engine: each node keeps links to
// a fixed list of neighbours (reconnecting a second after a failure) and
// floods every new message to all its links but the one it came on.
type flood struct {
	e     *Engine
	self  int
	want  []int          // neighbours to keep links to
	seen  map[uint64]int // message id -> hops
	first map[uint64]time.Duration
	log   []string // what happened, for tests that look
}

const (
	layerFlood Layer = 1
	layerRetry Layer = 2
)

func newFlood(e *Engine, want []int) *flood {
	return &flood{e: e, want: want, seen: map[uint64]int{}, first: map[uint64]time.Duration{}}
}

func (f *flood) start() {
	for _, p := range f.want {
		f.e.Connect(f.self, p)
	}
}

// originate floods a new message id.
func (f *flood) originate(id uint64) {
	f.seen[id] = 0
	f.first[id] = f.e.Now()
	f.forward(-1, id, 0)
}

func (f *flood) forward(from int, id uint64, hops int) {
	msg := binary.LittleEndian.AppendUint64(nil, id)
	msg = append(msg, byte(hops+1))
	for _, p := range f.e.Links(nil, f.self) {
		if p != from {
			f.e.Send(f.self, p, layerFlood, msg)
		}
	}
}

func (f *flood) HandleMessage(now time.Duration, from int, layer Layer, msg []byte) {
	id := binary.LittleEndian.Uint64(msg)
	if _, ok := f.seen[id]; ok {
		return
	}
	f.seen[id] = int(msg[8])
	f.first[id] = now
	f.forward(from, id, int(msg[8]))
}

func (f *flood) HandleTimer(now time.Duration, layer Layer, token uint64) {
	f.log = append(f.log, "timer")
	if layer == layerRetry {
		p := int(token)
		if !f.e.Linked(f.self, p) {
			f.e.Connect(f.self, p)
		}
	}
}

func (f *flood) HandleConnected(now time.Duration, peer int) {
	f.log = append(f.log, "connected")
}

func (f *flood) HandleConnectFailed(now time.Duration, peer int) {
	f.log = append(f.log, "failed")
	f.e.SetTimer(f.self, layerRetry, now+time.Second, uint64(peer))
}

func (f *flood) HandleDisconnected(now time.Duration, peer int) {
	f.log = append(f.log, "disconnected")
	if contains(f.want, peer) {
		f.e.SetTimer(f.self, layerRetry, now+time.Second, uint64(peer))
	}
}

func contains(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// floodNet builds n flood nodes on a ring with k random chords each, all
// chosen from seed, and starts them.
func floodNet(cfg Config, n, k int) (*Engine, []*flood) {
	e, err := New(cfg)
	if err != nil {
		panic(err)
	}
	r := NewRand(cfg.Seed, 1)
	fs := make([]*flood, n)
	for i := range fs {
		want := []int{(i + 1) % n}
		for range k {
			want = append(want, r.IntN(n))
		}
		fs[i] = newFlood(e, want)
		fs[i].self = e.AddNode(fs[i])
	}
	for _, f := range fs {
		f.start()
	}
	return e, fs
}
