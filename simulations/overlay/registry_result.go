package overlay

import (
	"fmt"
	"math"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/registry"
)

// RegistryResult is what the registry phase measured (Scenario.RegistryUpdates),
// and what follows from it. Measured and Derived list the JSON keys of
// each kind.
//
// An update reaches a node when that node's registry.Machine emits
// Changed for the publisher and holds the new Seq (or a later one). The
// nodes counted are the publisher's others that were alive and joined at
// the publication and stayed up to the end of the run: a node that
// crashed in between (churn) cannot take the update, and a restarted one
// is a new node that learns it by anti-entropy.
type RegistryResult struct {
	// Updates is the number of records published and followed; each by a
	// different node.
	Updates int `json:"updates"`
	// Publications counts every record broadcast in the phase: the
	// updates, plus refreshes and self-bumps if the run is long enough
	// (registry.Config.RefreshInterval).
	Publications int `json:"publications"`
	// RecordBytes is the mean encoded size of the published records.
	RecordBytes float64 `json:"record_bytes"`

	// Reach99 and Reach100: seconds from SetLocal until 99% and until all
	// of the counted nodes took the update, mean and max over the
	// updates. Reach100 averages the updates that reached every node; its
	// max is null if one never did within the run (as is Reach99's).
	Reach99Mean  *float64 `json:"reach99_seconds_mean"`
	Reach99Max   *float64 `json:"reach99_seconds_max"`
	Reach100Mean *float64 `json:"reach100_seconds_mean"`
	Reach100Max  *float64 `json:"reach100_seconds_max"`
	// ReachedAll is the number of updates that reached every counted node.
	ReachedAll int `json:"updates_reaching_all"`
	// DeliveredFraction is the share of counted nodes that took an update
	// by the end of the run: mean and smallest over the updates.
	DeliveredFraction    float64 `json:"delivered_fraction"`
	DeliveredFractionMin float64 `json:"delivered_fraction_min"`

	// BytesPerUpdate is C, the network-wide bytes one publication costs:
	// Bytes' broadcast share (Gossip, IHave, Graft, Prune) over
	// Publications.
	BytesPerUpdate float64 `json:"bytes_per_update"`
	// Bytes are the registry's bytes sent by all nodes in the phase.
	Bytes RegistryBytes `json:"bytes"`
	// PhaseSeconds is the length of the phase: first publication to end.
	PhaseSeconds float64 `json:"phase_seconds"`

	// Bandwidth is C/R: the bytes each node sends (and, on average,
	// receives) per second when every node publishes once per refresh
	// period R. N publications per R cost N*C, shared by the N nodes.
	Bandwidth PerRefresh `json:"bandwidth_bytes_per_node_per_second"`
	// NeighborUpsPerNodePerSecond is membership's NeighborUp outputs in
	// the phase over live nodes and seconds: how often each node runs
	// anti-entropy with a new neighbour.
	NeighborUpsPerNodePerSecond float64 `json:"neighbor_ups_per_node_per_second"`
	// DigestBytes is what one node sends on a NeighborUp when it holds a
	// record of each of the Nodes nodes: its full digest, in DIGEST
	// messages of registry.Config.DigestChunk entries. Its neighbour does
	// the same (it has its own NeighborUp), so a new link costs twice this,
	// one digest from each end; in sync, no RECORDS follow.
	DigestBytes int `json:"digest_bytes"`
	// AntiEntropyDigest is NeighborUpsPerNodePerSecond * DigestBytes: the
	// DIGEST bytes each node sends per second with a full registry.
	AntiEntropyDigest float64 `json:"antientropy_digest_bytes_per_node_per_second"`
	// AntiEntropyRecords is the RECORDS bytes each node would send per
	// second with a full registry: each RECORDS message's bytes over the
	// records published by the time it was sent, times Nodes records,
	// summed, over Nodes and PhaseSeconds. Records are pushed only to a
	// neighbour out of sync, such as a node that restarted empty (churn);
	// with no churn it is about zero.
	AntiEntropyRecords float64 `json:"antientropy_records_bytes_per_node_per_second"`
	// AntiEntropy is AntiEntropyDigest + AntiEntropyRecords.
	AntiEntropy float64 `json:"antientropy_bytes_per_node_per_second"`
	// Total is Bandwidth + AntiEntropy.
	Total PerRefresh `json:"total_bytes_per_node_per_second"`

	// Memory is what one real registry.Machine holding a record of each
	// of the Nodes nodes takes on the heap: the memory a node spends on
	// its registry.
	Memory RegistryMemory `json:"memory"`

	Measured []string `json:"measured"`
	Derived  []string `json:"derived"`

	PerUpdate []RegistryUpdateResult `json:"per_update"`
}

// RegistryBytes are registry bytes by message kind.
type RegistryBytes struct {
	Gossip  uint64 `json:"gossip"`  // GOSSIPs on the registry topic
	IHave   uint64 `json:"ihave"`   // IHAVEs, or their announcements, of registry messages
	Graft   uint64 `json:"graft"`   // GRAFTs for registry messages, and GRAFT(null) in the phase
	Prune   uint64 `json:"prune"`   // PRUNEs in the phase
	Records uint64 `json:"records"` // anti-entropy RECORDS (not in C: the anti-entropy term)
	Digest  uint64 `json:"digest"`  // anti-entropy DIGESTs (not in C: the anti-entropy term)
}

// PerRefresh is one figure at refresh periods of 1, 5 and 15 minutes.
type PerRefresh struct {
	M1  float64 `json:"1m"`
	M5  float64 `json:"5m"`
	M15 float64 `json:"15m"`
}

func perRefresh(f func(r time.Duration) float64) PerRefresh {
	return PerRefresh{M1: f(time.Minute), M5: f(5 * time.Minute), M15: f(15 * time.Minute)}
}

// RegistryUpdateResult is one publication.
type RegistryUpdateResult struct {
	K     int     `json:"k"`
	Node  int     `json:"node"`
	AtSec float64 `json:"at_seconds"`
	Bytes int     `json:"record_bytes"`
	// LiveAtPublication: other nodes alive and joined at the publication;
	// Live: those of them that stayed up to the end, the nodes counted.
	LiveAtPublication int      `json:"live_at_publication"`
	Live              int      `json:"live"`
	Reached           int      `json:"reached"` // of Live
	Reach99           *float64 `json:"reach99_seconds"`
	Reach100          *float64 `json:"reach100_seconds"`
}

func (r *regSim) updateResult(u *regUpdate) RegistryUpdateResult {
	s := r.s
	up := func(i int) bool { return s.eng.Alive(i) && s.born[i] <= u.at && s.joinT[i] <= u.at }
	res := RegistryUpdateResult{K: u.k, Node: u.node, AtSec: u.at.Seconds(), Bytes: u.size, LiveAtPublication: u.live}
	for i := range s.nodes {
		if i != u.node && up(i) {
			res.Live++
		}
	}
	var delays []time.Duration // in time order, as the engine dispatched them
	for _, h := range u.hits {
		if up(int(h.node)) {
			delays = append(delays, h.delay)
		}
	}
	res.Reached = len(delays)
	if need := int(math.Ceil(0.99 * float64(res.Live))); need == 0 {
		res.Reach99 = secs(0)
	} else if len(delays) >= need {
		res.Reach99 = secs(delays[need-1])
	}
	if res.Reached == res.Live {
		res.Reach100 = secs(0)
		if res.Reached > 0 {
			res.Reach100 = secs(delays[res.Reached-1])
		}
	}
	return res
}

// meanMax returns the mean of the non-nil values and their max, which is
// nil if any value is nil.
func meanMax(vs []*float64) (mean, maxv *float64) {
	sum, n, hi, all := 0.0, 0, 0.0, true
	for _, v := range vs {
		if v == nil {
			all = false
			continue
		}
		sum += *v
		hi = max(hi, *v)
		n++
	}
	if n > 0 {
		m := sum / float64(n)
		mean = &m
	}
	if all && n > 0 {
		maxv = &hi
	}
	return mean, maxv
}

func (r *regSim) result() (*RegistryResult, error) {
	s := r.s
	res := &RegistryResult{
		Updates:      len(r.updates),
		Publications: r.publications,
		Bytes:        r.bytes,
		PhaseSeconds: (s.eng.Now() - r.start).Seconds(),
		Measured: []string{"updates", "publications", "record_bytes", "reach99_seconds_mean", "reach99_seconds_max",
			"reach100_seconds_mean", "reach100_seconds_max", "updates_reaching_all", "delivered_fraction",
			"delivered_fraction_min", "bytes_per_update", "bytes", "neighbor_ups_per_node_per_second", "memory", "per_update"},
		Derived: []string{"digest_bytes", "bandwidth_bytes_per_node_per_second",
			"antientropy_digest_bytes_per_node_per_second", "antientropy_records_bytes_per_node_per_second",
			"antientropy_bytes_per_node_per_second", "total_bytes_per_node_per_second"},
	}
	var r99, r100 []*float64
	res.DeliveredFractionMin = 1
	for _, u := range r.updates {
		ur := r.updateResult(u)
		res.PerUpdate = append(res.PerUpdate, ur)
		res.RecordBytes += float64(u.size)
		r99 = append(r99, ur.Reach99)
		r100 = append(r100, ur.Reach100)
		if ur.Reach100 != nil {
			res.ReachedAll++
		}
		f := 1.0
		if ur.Live > 0 {
			f = float64(ur.Reached) / float64(ur.Live)
		}
		res.DeliveredFraction += f
		res.DeliveredFractionMin = min(res.DeliveredFractionMin, f)
	}
	if n := len(r.updates); n > 0 {
		res.RecordBytes /= float64(n)
		res.DeliveredFraction /= float64(n)
	} else {
		res.DeliveredFractionMin = 0
	}
	res.Reach99Mean, res.Reach99Max = meanMax(r99)
	res.Reach100Mean, res.Reach100Max = meanMax(r100)

	b := r.bytes
	if r.publications > 0 {
		res.BytesPerUpdate = float64(b.Gossip+b.IHave+b.Graft+b.Prune) / float64(r.publications)
	}
	res.Bandwidth = perRefresh(func(p time.Duration) float64 { return res.BytesPerUpdate / p.Seconds() })
	live := 0
	for i := range s.nodes {
		if s.eng.Alive(i) {
			live++
		}
	}
	if live > 0 && res.PhaseSeconds > 0 {
		res.NeighborUpsPerNodePerSecond = float64(r.neighborUps) / float64(live) / res.PhaseSeconds
	}
	d, err := digestBytes(s.sc.Nodes, r.cfg.DigestChunk)
	if err != nil {
		return nil, err
	}
	res.DigestBytes = d
	res.AntiEntropyDigest = res.NeighborUpsPerNodePerSecond * float64(d)
	if res.PhaseSeconds > 0 {
		res.AntiEntropyRecords = r.recordsPerHeld / res.PhaseSeconds
	}
	res.AntiEntropy = res.AntiEntropyDigest + res.AntiEntropyRecords
	res.Total = perRefresh(func(p time.Duration) float64 { return res.BytesPerUpdate/p.Seconds() + res.AntiEntropy })

	mem, err := measureRegistryMemory(r.keys, r.cfg, epoch.Add(s.eng.Now()))
	if err != nil {
		return nil, err
	}
	res.Memory = mem
	return res, nil
}

// digestBytes is the encoded size of the DIGEST messages a node holding n
// records sends a new neighbour, chunk entries each at most (as
// registry.Machine.HandleNeighborUp cuts them).
func digestBytes(n, chunk int) (int, error) {
	if chunk <= 0 {
		return 0, fmt.Errorf("overlay: digest chunk %d", chunk)
	}
	size := func(entries int) (int, error) {
		d := registry.Digest{To: maxNodeID()}
		for j := range entries {
			var id identity.NodeID
			id[28], id[29], id[30], id[31] = byte((j+1)>>24), byte((j+1)>>16), byte((j+1)>>8), byte(j+1)
			d.Entries = append(d.Entries, registry.DigestEntry{ID: id, Seq: uint64(j + 1)})
		}
		b, err := registry.AppendDigest(nil, d)
		return len(b), err
	}
	full, err := size(chunk)
	if err != nil {
		return 0, err
	}
	total := (n / chunk) * full
	if rest := n % chunk; rest > 0 || n == 0 {
		last, err := size(rest)
		if err != nil {
			return 0, err
		}
		total += last
	}
	return total, nil
}

func maxNodeID() (id identity.NodeID) {
	for i := range id {
		id[i] = 0xff
	}
	return id
}
