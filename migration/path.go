package migration

import (
	"cmp"
	"slices"
	"time"
)

// state is where a path stands with validation.
type state uint8

const (
	// unvalidated: added, its first probe out.
	unvalidated state = iota
	// validated: a probe succeeded, and nothing since says it is dead.
	validated
	// suspect: validated once, then SuspectAfter keep-alives in a row went
	// unanswered; a probe is out. Never a candidate; the current path
	// stays current while suspect only if nothing else is usable.
	suspect
	// failed: its last probe failed or timed out. Probed again only on an
	// address change, or when the current path turns suspect.
	failed
)

// path is what the machine knows of one path.
type path struct {
	id    PathID
	kind  Kind
	state state

	probing    bool   // a Probe is out
	probeSeq   uint64 // the seq of its timer
	probeCause Cause  // what the probe is for
	// doubt is the address change (CauseRebinding, CauseLocalAddress)
	// whose re-validation is out, or zero. A path in doubt is no
	// candidate, but the current path stays current while in doubt.
	doubt Cause

	misses int // keep-alives unanswered in a row

	sampled bool    // srtt holds a sample
	srtt    float64 // smoothed RTT, seconds
	loss    float64 // smoothed loss rate, 0..1

	// streak counts this path's samples in a row at which it beat the
	// current path by the margin, with no sample of the current path in
	// between saying otherwise; since is the time of the first. Zeroed by
	// every switch.
	streak int
	since  time.Time
}

// sampleRTT folds one RTT into the EWMA; the first sample sets it, as RFC
// 9002 §5.3 does.
func (p *path) sampleRTT(rtt time.Duration, gain float64) {
	r := secs(rtt)
	if !p.sampled {
		p.srtt, p.sampled = r, true
		return
	}
	p.srtt += gain * (r - p.srtt)
}

func (p *path) sampleLoss(loss, gain float64) { p.loss += gain * (loss - p.loss) }

// cost is the path's own cost in seconds: smoothed RTT plus the loss
// penalty. Only validated paths are costed, and Validated always brings
// an RTT sample.
func (p *path) cost(c *Config) float64 {
	return p.srtt + secs(c.LossPenalty)*p.loss
}

// biased is the cost a path is compared with across kinds: a circuit's
// cost is scaled and raised so that direct paths win unless clearly
// worse (Config.CircuitFactor).
func (p *path) biased(c *Config) float64 {
	if p.kind == Circuit {
		return p.cost(c)*c.CircuitFactor + secs(c.CircuitPenalty)
	}
	return p.cost(c)
}

// eligible reports whether p may become current: validated and not in
// doubt.
func (p *path) eligible() bool { return p.state == validated && p.doubt == 0 }

// usable reports whether p may stay current.
func (p *path) usable() bool { return p.state == validated || p.state == suspect }

// find returns the path with the given id, or nil.
func (m *Machine) find(id PathID) *path {
	i, ok := slices.BinarySearchFunc(m.paths, id, func(p *path, id PathID) int {
		return cmp.Compare(p.id, id)
	})
	if !ok {
		return nil
	}
	return m.paths[i]
}

// insert adds p, keeping m.paths sorted by ID so that every scan, and so
// every output, comes in a fixed order.
func (m *Machine) insert(p *path) {
	i, _ := slices.BinarySearchFunc(m.paths, p.id, func(q *path, id PathID) int {
		return cmp.Compare(q.id, id)
	})
	m.paths = slices.Insert(m.paths, i, p)
}

func (m *Machine) remove(p *path) {
	m.paths = slices.DeleteFunc(m.paths, func(q *path) bool { return q == p })
}
