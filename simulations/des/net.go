package des

import (
	"slices"
	"time"
)

// pairDelay is the fixed extra one-way delay of the pair a, b: a hash of the
// seed and the pair, in [0, Latency.Spread). Symmetric, and stored nowhere.
func (e *Engine) pairDelay(a, b int) time.Duration {
	s := e.cfg.Latency.Spread
	if s <= 0 {
		return 0
	}
	lo, hi := uint64(min(a, b)), uint64(max(a, b))
	return time.Duration(mix(e.cfg.Seed^mix(lo<<32|hi)) % uint64(s))
}

// RTT is the round-trip time between a and b without jitter.
func (e *Engine) RTT(a, b int) time.Duration {
	return 2 * (e.cfg.Latency.Base + e.pairDelay(a, b))
}

// delay is the one-way delay of one message from a to b, jitter included.
func (e *Engine) delay(a, b int) time.Duration {
	d := e.cfg.Latency.Base + e.pairDelay(a, b)
	if j := e.cfg.Latency.Jitter; j > 0 {
		d += time.Duration(e.rng.Int64N(int64(j)))
	}
	return d
}

// reachable reports whether a can reach b now.
func (e *Engine) reachable(a, b int) bool {
	na, nb := &e.nodes[a], &e.nodes[b]
	return a != b && na.alive && nb.alive && na.group == nb.group
}

func findLink(ls []link, peer int32) int {
	for i := range ls {
		if ls[i].peer == peer {
			return i
		}
	}
	return -1
}

func (e *Engine) addLink(a, b int) {
	na, nb := &e.nodes[a], &e.nodes[b]
	if findLink(na.links, int32(b)) < 0 {
		na.links = append(na.links, link{peer: int32(b), last: e.now})
	}
	if findLink(nb.links, int32(a)) < 0 {
		nb.links = append(nb.links, link{peer: int32(a), last: e.now})
	}
}

// dropLink removes b from a's links and returns the arrival time of the last
// message a sent b over it.
func (e *Engine) dropLink(a, b int) (last time.Duration, ok bool) {
	na := &e.nodes[a]
	k := findLink(na.links, int32(b))
	if k < 0 {
		return 0, false
	}
	last = na.links[k].last
	na.links = slices.Delete(na.links, k, k+1)
	return last, true
}

// Send sends msg from node from to node to, tagged with layer. Over a link
// the message keeps FIFO order; with no link it pays a handshake round trip
// and opens nothing. The engine keeps msg until it is delivered and does
// not copy it: the sender must not change it after Send. A dead sender
// sends nothing.
func (e *Engine) Send(from, to int, layer Layer, msg []byte) {
	f := &e.nodes[from]
	if !f.alive {
		return
	}
	e.stats.Sent++
	e.stats.SentBytes += uint64(len(msg))
	ev := event{kind: evDeliver, node: int32(to), peer: int32(from), layer: layer, msg: msg, epoch: e.nodes[to].epoch}
	if e.cfg.Loss > 0 && e.rng.Float64() < e.cfg.Loss {
		e.stats.Lost++
		ev.at, ev.kind = e.now, evLost
		e.record(ev, msg)
		return
	}
	d := e.delay(from, to)
	if k := findLink(f.links, int32(to)); k >= 0 {
		ev.at = max(e.now+d, f.links[k].last)
		f.links[k].last = ev.at
	} else {
		ev.at = e.now + e.RTT(from, to) + d
	}
	e.schedule(ev)
}

// Connect opens a link from a to b. After one round trip a gets
// HandleConnected(b); if b is dead or cut off (then or when the handshake
// ends), a gets HandleConnectFailed(b) after Config.ConnectTimeout. If the
// link is already up, HandleConnected comes at once (as the next event at
// this time). b is not told until a message arrives.
func (e *Engine) Connect(a, b int) {
	na := &e.nodes[a]
	if !na.alive {
		return
	}
	e.stats.Connects++
	ev := event{node: int32(a), peer: int32(b), epoch: na.epoch, kind: evConnectOK}
	switch {
	case findLink(na.links, int32(b)) >= 0:
		ev.at = e.now
	case e.reachable(a, b):
		ev.at = e.now + e.RTT(a, b)
	default:
		ev.at, ev.kind = e.now+e.cfg.ConnectTimeout, evConnectFail
	}
	e.schedule(ev)
}

// Disconnect closes the link a–b from a's side: it is down at once, and b
// gets HandleDisconnected(a) after the messages a sent it before. Without
// a link it does nothing.
func (e *Engine) Disconnect(a, b int) {
	last, ok := e.dropLink(a, b)
	if !ok {
		return
	}
	e.dropLink(b, a)
	nb := &e.nodes[b]
	if !nb.alive {
		return
	}
	at := max(e.now+e.delay(a, b), last)
	e.schedule(event{at: at, kind: evDisconnected, node: int32(b), peer: int32(a), epoch: nb.epoch})
}

// Crash kills node i: its links break (each peer learns after
// Config.DetectDelay), its timers and the messages on their way to it are
// void. A dead node's handler is never called again.
func (e *Engine) Crash(i int) {
	n := &e.nodes[i]
	if !n.alive {
		return
	}
	n.alive = false
	n.epoch++
	for _, l := range n.links {
		e.dropLink(int(l.peer), i)
		e.breakNotice(int(l.peer), i)
	}
	n.links = n.links[:0]
}

// breakNotice tells node i, after the detection delay, that its link to peer broke.
func (e *Engine) breakNotice(i, peer int) {
	n := &e.nodes[i]
	e.schedule(event{at: e.now + e.cfg.DetectDelay, kind: evDisconnected, node: int32(i), peer: int32(peer), epoch: n.epoch})
}

// Restart brings dead node i back with a fresh handler h (a new process: no
// links, no timers, no state). Messages sent to i while it was down are
// dropped. Restarting a live node does nothing and returns false.
func (e *Engine) Restart(i int, h Handler) bool {
	n := &e.nodes[i]
	if n.alive {
		return false
	}
	n.alive = true
	n.epoch++
	n.h = h
	return true
}

// Partition puts each node i in group(i). Links between groups break (both
// ends learn after Config.DetectDelay); messages and connects between groups
// fail until the groups are merged again. Heal is Partition with one group.
func (e *Engine) Partition(group func(i int) int) {
	for i := range e.nodes {
		e.nodes[i].group = int32(group(i))
	}
	for a := range e.nodes {
		na := &e.nodes[a]
		for k := 0; k < len(na.links); {
			b := int(na.links[k].peer)
			if e.nodes[b].group == na.group {
				k++
				continue
			}
			na.links = slices.Delete(na.links, k, k+1)
			e.dropLink(b, a)
			if na.alive {
				e.breakNotice(a, b)
			}
			if e.nodes[b].alive {
				e.breakNotice(b, a)
			}
		}
	}
}

// Heal ends every partition: all nodes are in group 0 again. Broken links
// stay broken; the machines must make new ones.
func (e *Engine) Heal() {
	for i := range e.nodes {
		e.nodes[i].group = 0
	}
}
