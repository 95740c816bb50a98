package overlay

import (
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
	"github.com/mycelium-net/mycelium/membership"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/simulations/des"
)

// The layers a link carries: one tag per machine, on messages and timers.
const (
	layerMembership des.Layer = 1
	layerBroadcast  des.Layer = 2
	layerRegistry   des.Layer = 3 // anti-entropy (DIGEST, RECORDS)
)

// epoch is virtual time 0 as the machines see it: a fixed date, so that
// times (and the broadcast sequence numbers taken from them) are the same
// in every run.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Node is one simulated node: one membership.Machine, one
// broadcast.Machine and (with Scenario.RegistryUpdates) one
// registry.Machine, wired as the real driver wires them. It carries out
// each machine's outputs in order; membership's NeighborUp and NeighborDown
// go to broadcast, then to the registry; registry Publish is broadcast on
// the registry topic, and deliveries on that topic go to the registry;
// all machines' messages share the node's links, tagged by layer.
type Node struct {
	sim *Sim
	idx int
	mem *membership.Machine
	bc  *broadcast.Machine
	reg *registry.Machine // nil without the registry

	memTimers timerTable[membership.Timer]
	bcTimers  timerTable[broadcast.Timer]
	regTimers timerTable[registry.Timer]
}

var _ des.Handler = (*Node)(nil)

// Membership returns the node's HyParView machine.
func (n *Node) Membership() *membership.Machine { return n.mem }

// Broadcast returns the node's Plumtree machine.
func (n *Node) Broadcast() *broadcast.Machine { return n.bc }

// Registry returns the node's registry machine, or nil when the scenario
// runs none.
func (n *Node) Registry() *registry.Machine { return n.reg }

// HandleMessage implements des.Handler.
func (n *Node) HandleMessage(now time.Duration, from int, layer des.Layer, msg []byte) {
	t := epoch.Add(now)
	switch layer {
	case layerMembership:
		n.doMembership(t, n.mem.HandleMessage(t, n.sim.ids[from], msg))
	case layerBroadcast:
		n.doBroadcast(t, n.bc.HandleMessage(t, n.sim.ids[from], msg))
	case layerRegistry:
		if n.reg != nil {
			n.doRegistry(t, n.reg.HandleMessage(t, n.sim.ids[from], msg))
		}
	}
}

// HandleTimer implements des.Handler.
func (n *Node) HandleTimer(now time.Duration, layer des.Layer, token uint64) {
	t := epoch.Add(now)
	switch layer {
	case layerMembership:
		n.doMembership(t, n.mem.HandleTimer(t, n.memTimers.take(token)))
	case layerBroadcast:
		n.doBroadcast(t, n.bc.HandleTimer(t, n.bcTimers.take(token)))
	case layerRegistry:
		n.doRegistry(t, n.reg.HandleTimer(t, n.regTimers.take(token)))
	}
}

// HandleConnected implements des.Handler.
func (n *Node) HandleConnected(now time.Duration, peer int) {
	t := epoch.Add(now)
	n.doMembership(t, n.mem.HandleConnected(t, n.sim.ids[peer]))
}

// HandleConnectFailed implements des.Handler.
func (n *Node) HandleConnectFailed(now time.Duration, peer int) {
	t := epoch.Add(now)
	n.doMembership(t, n.mem.HandleConnectFailed(t, n.sim.ids[peer]))
}

// HandleDisconnected implements des.Handler.
func (n *Node) HandleDisconnected(now time.Duration, peer int) {
	t := epoch.Add(now)
	n.doMembership(t, n.mem.HandleDisconnected(t, n.sim.ids[peer]))
}

// start starts the node's registry, as the node does before it joins
// (Machine.Start arms the sweep timer).
func (n *Node) start() {
	if n.reg != nil {
		t := epoch.Add(n.sim.eng.Now())
		n.doRegistry(t, n.reg.Start(t))
	}
}

// join starts the node's membership through contact.
func (n *Node) join(contact int) {
	t := epoch.Add(n.sim.eng.Now())
	n.doMembership(t, n.mem.Join(t, n.sim.peers[contact]))
}

// broadcast originates a message.
func (n *Node) broadcast(payload []byte) error {
	t := epoch.Add(n.sim.eng.Now())
	_, out, err := n.bc.Broadcast(t, topic, payload)
	if err != nil {
		return err
	}
	n.doBroadcast(t, out)
	return nil
}

func (n *Node) doMembership(t time.Time, out []membership.Output) {
	s := n.sim
	for _, o := range out {
		switch o := o.(type) {
		case membership.Send:
			if to, ok := s.index(o.To.ID); ok {
				s.eng.Send(n.idx, to, layerMembership, o.Msg)
			}
		case membership.Connect:
			if to, ok := s.index(o.Peer.ID); ok {
				s.eng.Connect(n.idx, to)
			}
		case membership.Disconnect:
			if to, ok := s.index(o.Peer); ok {
				s.eng.Disconnect(n.idx, to)
			}
		case membership.SetTimer:
			s.eng.SetTimer(n.idx, layerMembership, o.At.Sub(epoch), n.memTimers.put(o.Timer))
		case membership.NeighborUp:
			n.doBroadcast(t, n.bc.HandleNeighborUp(t, o.Peer.ID))
			if n.reg != nil {
				s.reg.neighborUp()
				n.doRegistry(t, n.reg.HandleNeighborUp(t, o.Peer.ID))
			}
		case membership.NeighborDown:
			n.doBroadcast(t, n.bc.HandleNeighborDown(t, o.Peer))
			if n.reg != nil {
				n.doRegistry(t, n.reg.HandleNeighborDown(t, o.Peer))
			}
		default:
			s.unknownOutputs++
		}
	}
}

func (n *Node) doBroadcast(t time.Time, out []broadcast.Output) {
	s := n.sim
	for _, o := range out {
		switch o := o.(type) {
		case broadcast.Send:
			if to, ok := s.index(o.To); ok {
				s.countSend(o.Msg)
				if n.reg != nil {
					s.reg.countBroadcastSend(s.eng.Now(), o.Msg)
				}
				s.eng.Send(n.idx, to, layerBroadcast, o.Msg)
			}
		case broadcast.SetTimer:
			s.eng.SetTimer(n.idx, layerBroadcast, o.At.Sub(epoch), n.bcTimers.put(o.Timer))
		case broadcast.Deliver:
			if o.Topic == registryTopic {
				if n.reg != nil {
					n.doRegistry(t, n.reg.HandleBroadcast(t, o.Payload))
				}
				continue
			}
			s.delivered(n.idx, o)
		default:
			s.unknownOutputs++
		}
	}
}

// doRegistry carries out registry outputs, as the node's applyReg does.
func (n *Node) doRegistry(t time.Time, out []registry.Output) {
	s := n.sim
	for _, o := range out {
		switch o := o.(type) {
		case registry.Publish:
			id, bout, err := n.bc.Broadcast(t, registryTopic, o.Payload)
			if err != nil {
				s.buildErr = err
				continue
			}
			s.reg.published(id)
			n.doBroadcast(t, bout)
		case registry.Send:
			if to, ok := s.index(o.To); ok {
				s.reg.countRegistrySend(s.eng.Now(), o.Msg)
				s.eng.Send(n.idx, to, layerRegistry, o.Msg)
			}
		case registry.SetTimer:
			s.eng.SetTimer(n.idx, layerRegistry, o.At.Sub(epoch), n.regTimers.put(o.Timer))
		case registry.Changed:
			s.reg.changed(n, o)
		default:
			s.unknownOutputs++
		}
	}
}

// timerTable holds a machine's pending timers, so the engine carries only
// a small token. Every timer fires once (none is cancelled), and frees its
// slot when it does.
type timerTable[T any] struct {
	slots []T
	free  []uint32
}

func (tt *timerTable[T]) put(t T) uint64 {
	if n := len(tt.free); n > 0 {
		k := tt.free[n-1]
		tt.free = tt.free[:n-1]
		tt.slots[k] = t
		return uint64(k)
	}
	tt.slots = append(tt.slots, t)
	return uint64(len(tt.slots) - 1)
}

func (tt *timerTable[T]) take(token uint64) T {
	t := tt.slots[token]
	var zero T
	tt.slots[token] = zero
	tt.free = append(tt.free, uint32(token))
	return t
}
