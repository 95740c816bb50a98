package netlab

import "time"

// scheduler holds the datagrams in flight on links with latency, in order
// of arrival, behind one time.Timer for the earliest. One timer for the
// whole network, rather than one per datagram, keeps the order of arrivals
// fixed: datagrams due at the same instant arrive in the order they were
// sent.
//
// Every field is guarded by Network.mu. Each scheduled run of fire holds
// one count of Network.wg, so Close can wait for a run already under way.
type scheduler struct {
	heap  []event
	seq   uint64
	timer *time.Timer // calls Network.fire; nil until first needed
	armed bool        // a run of fire is scheduled and has not yet taken the lock
	at    time.Time   // when the armed run is due
}

// event is a datagram that arrives at next at the given time.
type event struct {
	at   time.Time
	seq  uint64
	p    *packet
	next hop
}

func (e event) before(f event) bool {
	if !e.at.Equal(f.at) {
		return e.at.Before(f.at)
	}
	return e.seq < f.seq
}

// pushLocked schedules p to arrive at next at time at.
func (s *scheduler) pushLocked(n *Network, at time.Time, p *packet, next hop) {
	s.seq++
	s.heap = append(s.heap, event{at: at, seq: s.seq, p: p, next: next})
	s.up(len(s.heap) - 1)
	s.armLocked(n, at)
}

// armLocked makes sure a run of fire is due no later than at.
func (s *scheduler) armLocked(n *Network, at time.Time) {
	if s.armed {
		if !at.Before(s.at) {
			return // the armed run comes first and re-arms for the rest
		}
		if !s.timer.Stop() {
			// The run has fired and waits for the lock; it re-arms for
			// the earliest event, which includes this one.
			return
		}
		s.timer.Reset(time.Until(at))
		s.at = at
		return
	}
	n.wg.Add(1)
	s.armed, s.at = true, at
	if s.timer == nil {
		s.timer = time.AfterFunc(time.Until(at), n.fire)
		return
	}
	s.timer.Reset(time.Until(at))
}

// fire delivers every datagram that is due, then re-arms for the next.
func (n *Network) fire() {
	defer n.wg.Done()
	n.mu.Lock()
	defer n.mu.Unlock()
	s := &n.sched
	s.armed = false
	if n.closed {
		return
	}
	now := time.Now()
	for len(s.heap) > 0 && !s.heap[0].at.After(now) {
		e := s.pop()
		e.next.arriveLocked(e.p)
	}
	if len(s.heap) > 0 {
		s.armLocked(n, s.heap[0].at)
	}
}

// stopLocked drops every datagram in flight and cancels the timer. A run
// of fire that has already fired finds the network closed and returns.
func (s *scheduler) stopLocked(n *Network) {
	if s.armed && s.timer.Stop() {
		n.wg.Done()
	}
	s.armed = false
	for _, e := range s.heap {
		n.dropLocked(e.p, "network", DropClosed)
	}
	s.heap = nil
}

func (s *scheduler) pop() event {
	h := s.heap
	e := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{}
	s.heap = h[:last]
	s.down(0)
	return e
}

func (s *scheduler) up(i int) {
	h := s.heap
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (s *scheduler) down(i int) {
	h := s.heap
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].before(h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].before(h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}
