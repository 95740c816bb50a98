package overlay

import (
	"encoding/hex"
	"runtime"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/simulations/des"
)

// Result is what a run measured. Its JSON form is `mycelium sim --json`.
type Result struct {
	Nodes int    `json:"nodes"`
	Seed  uint64 `json:"seed"`
	// Failed is the number of nodes crashed at once at the failure.
	Failed int `json:"failed"`
	Live   int `json:"live"`
	// Connected: the live overlay (active views) is one component at the end.
	Connected  bool `json:"connected"`
	Components int  `json:"components"`
	// Reliability is the share of live nodes that delivered, averaged over
	// the measured broadcasts (those from the failure on).
	Reliability float64 `json:"reliability"`
	// ReliabilityFirst is that of the first measured broadcast, sent at
	// the moment of the failure; ReliabilityLater averages the others.
	ReliabilityFirst float64 `json:"reliability_first"`
	ReliabilityLater float64 `json:"reliability_later"`
	// RMR is the relative message redundancy, m/(n-1) - 1, averaged over
	// the measured broadcasts; LDH is the largest delivery hop count among
	// them (Plumtree paper, §4).
	RMR float64 `json:"rmr"`
	LDH int     `json:"ldh"`
	// HealSeconds is how long after the failure the live overlay was one
	// component again and a broadcast reached every live node (the later
	// of ConnectedAfterSeconds and FullDeliveryAfterSeconds), or null if
	// it never was within the run, or there was no failure.
	HealSeconds              *float64 `json:"heal_seconds"`
	ConnectedAfterSeconds    *float64 `json:"connected_after_seconds"`
	FullDeliveryAfterSeconds *float64 `json:"full_delivery_after_seconds"`

	WallSeconds float64 `json:"wall_seconds"`
	SimSeconds  float64 `json:"sim_seconds"`
	// HeapBytesPerNode is the live Go heap at the end of the run (machines,
	// engine and measurements) divided by the nodes.
	HeapBytesPerNode float64 `json:"heap_bytes_per_node"`

	Overlay    Overlay           `json:"overlay"`
	Invariants Invariants        `json:"invariants"`
	Engine     des.Stats         `json:"engine"`
	PerBcast   []BroadcastResult `json:"broadcasts"`
	// Registry is the registry phase, with Scenario.RegistryUpdates.
	Registry *RegistryResult `json:"registry,omitempty"`
	// NAT is the theory's verdict on the nodes' NAT mix, with
	// Scenario.NATMix.
	NAT *NATResult `json:"nat,omitempty"`
	// Circuits is the circuit phase, with Scenario.CircuitDials.
	Circuits *CircuitResult `json:"circuits,omitempty"`
	// TraceSHA256 is the engine's trace hash: the same scenario and seed
	// give the same hash.
	TraceSHA256 string   `json:"trace_sha256"`
	Scenario    Scenario `json:"scenario"`
}

// Invariants are the properties a settled overlay must have. Each field
// counts violations among live nodes; OK says all are zero.
type Invariants struct {
	OK bool `json:"ok"`
	// Asymmetric: b in a's active view but a not in b's (both live).
	Asymmetric int `json:"asymmetric"`
	// DeadInActive: a dead node in a live node's active view.
	DeadInActive int `json:"dead_in_active"`
	// SelfLinks: a node in its own active or passive view.
	SelfLinks int `json:"self_links"`
	// ActiveOversize and PassiveOversize: views above their configured size.
	ActiveOversize  int `json:"active_oversize"`
	PassiveOversize int `json:"passive_oversize"`
	// TreeMismatch: broadcast's eager and lazy peers are not exactly the
	// active view.
	TreeMismatch int `json:"tree_mismatch"`
	// UnknownPeers: outputs naming a node ID the simulator does not know;
	// UnknownOutputs: outputs of a type the adapter does not know.
	UnknownPeers   int `json:"unknown_peers"`
	UnknownOutputs int `json:"unknown_outputs"`
}

// CheckInvariants checks the live overlay now.
func (s *Sim) CheckInvariants() Invariants {
	var v Invariants
	act := make([][]int32, len(s.nodes))
	for i, nd := range s.nodes {
		if !s.eng.Alive(i) {
			continue
		}
		for _, p := range nd.mem.Active() {
			j, ok := s.byID[p.ID]
			switch {
			case !ok:
				v.UnknownPeers++
			case int(j) == i:
				v.SelfLinks++
			case !s.eng.Alive(int(j)):
				v.DeadInActive++
			default:
				act[i] = append(act[i], j)
			}
		}
		for _, p := range nd.mem.Passive() {
			if p.ID == s.ids[i] {
				v.SelfLinks++
			}
		}
		if len(nd.mem.Active()) > s.memCfg.ActiveSize {
			v.ActiveOversize++
		}
		if len(nd.mem.Passive()) > s.memCfg.PassiveSize {
			v.PassiveOversize++
		}
		tree := append(nd.bc.Eager(), nd.bc.Lazy()...)
		var want [][32]byte
		for _, p := range nd.mem.Active() {
			want = append(want, p.ID)
		}
		var got [][32]byte
		for _, id := range tree {
			got = append(got, id)
		}
		slices.SortFunc(want, cmpID)
		slices.SortFunc(got, cmpID)
		if !slices.Equal(want, got) {
			v.TreeMismatch++
		}
	}
	for i, peers := range act {
		for _, j := range peers {
			if !slices.Contains(act[j], int32(i)) {
				v.Asymmetric++
			}
		}
	}
	v.UnknownPeers += s.unknownPeers
	v.UnknownOutputs = s.unknownOutputs
	v.OK = v == Invariants{}
	return v
}

func cmpID(a, b [32]byte) int {
	for k := range a {
		if a[k] != b[k] {
			return int(a[k]) - int(b[k])
		}
	}
	return 0
}

func secs(d time.Duration) *float64 {
	f := d.Seconds()
	return &f
}

func (s *Sim) result(wall time.Duration) (*Result, error) {
	r := &Result{
		Nodes:       s.sc.Nodes,
		Seed:        s.sc.Seed,
		WallSeconds: wall.Seconds(),
		SimSeconds:  s.eng.Now().Seconds(),
		Engine:      s.eng.Stats(),
		Scenario:    s.sc,
	}
	if s.sc.Fail > 0 {
		r.Failed = int(s.sc.Fail*float64(s.sc.Nodes) + 0.5)
	}
	r.Overlay = s.components()
	r.Live, r.Connected, r.Components = r.Overlay.Live, r.Overlay.Connected, r.Overlay.Components
	r.Invariants = s.CheckInvariants()
	var measured []BroadcastResult
	fullAt := time.Duration(-1)
	for _, b := range s.bcasts {
		if b == nil {
			continue
		}
		br := b.result()
		r.PerBcast = append(r.PerBcast, br)
		if !b.measured {
			continue
		}
		measured = append(measured, br)
		if fullAt < 0 && b.live > 0 && b.eligible == b.live {
			fullAt = b.last
		}
	}
	if len(measured) > 0 {
		for i, b := range measured {
			r.Reliability += b.Reliability
			r.RMR += b.RMR
			r.LDH = max(r.LDH, b.LDH)
			if i > 0 {
				r.ReliabilityLater += b.Reliability
			}
		}
		r.Reliability /= float64(len(measured))
		r.RMR /= float64(len(measured))
		r.ReliabilityFirst = measured[0].Reliability
		if len(measured) > 1 {
			r.ReliabilityLater /= float64(len(measured) - 1)
		} else {
			r.ReliabilityLater = r.ReliabilityFirst
		}
	}
	if s.sc.Fail > 0 {
		if s.connectedAt >= 0 {
			r.ConnectedAfterSeconds = secs(s.connectedAt - s.failAt)
		}
		if fullAt >= 0 {
			r.FullDeliveryAfterSeconds = secs(fullAt - s.failAt)
		}
		if r.ConnectedAfterSeconds != nil && r.FullDeliveryAfterSeconds != nil {
			r.HealSeconds = secs(max(s.connectedAt, fullAt) - s.failAt)
		}
	}
	if s.reg != nil {
		reg, err := s.reg.result()
		if err != nil {
			return nil, err
		}
		r.Registry = reg
	}
	if s.natMix != nil {
		r.NAT = natResult(s.natMix, s.natClass)
	}
	if s.circ != nil {
		r.Circuits = s.circ.result()
	}
	h := s.eng.TraceHash()
	r.TraceSHA256 = hex.EncodeToString(h[:])
	r.HeapBytesPerNode = (heapAlloc() - s.heapBase) / float64(len(s.nodes))
	runtime.KeepAlive(s)
	return r, nil
}
