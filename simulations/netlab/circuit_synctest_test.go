package netlab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestCircuitDial: two nodes behind symmetric NATs
// (address-and-port-dependent mapping and filtering) cannot be
// hole-punched. A dials B by node ID anyway: Dial builds a one-hop
// circuit through one of B's public neighbours, and 256 KiB go through
// B's echo service and back intact over the end-to-end QUIC connection
// inside it. A's status shows B on path "circuit" with the relay in via.
func TestSynctestCircuitDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Link.Latency = 5 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()
		pubs, a, b := punchLab(t, lab,
			natCfg("198.51.100.1", netlab.AddressAndPortDependent, netlab.AddressAndPortDependent),
			natCfg("198.51.100.2", netlab.AddressAndPortDependent, netlab.AddressAndPortDependent))
		// Strangers for the filtering probes, so both learn their filtering.
		boot := []mycelium.Peer{{ID: pubs[0].ID(), Addr: pubs[0].LocalAddr()}}
		for i := range 6 {
			h, err := lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(30 + i)}))
			if err != nil {
				t.Fatal(err)
			}
			pubs = append(pubs, labNodeBoot(t, h, 4433, boot), labNodeBoot(t, h, 4434, boot))
		}
		defer func() {
			for _, n := range append(pubs, a, b) {
				n.Close()
			}
		}()
		serveLabEcho(t, b)
		waitFor(t, "A to know B's record as symmetric-NATed, with neighbours", func() bool {
			r, ok := a.Lookup(b.ID())
			return ok && !r.Inbound && r.Mapping.String() == "address-and-port-dependent" && r.Filtering.String() == "address-and-port-dependent" &&
				a.Stats().NAT.Filtering == "address-and-port-dependent" && len(r.Neighbors) > 0
		})
		start := time.Now()
		c, err := a.Dial(context.Background(), b.ID(), "echo")
		if err != nil {
			t.Fatalf("dial B by ID: %v\nA: %+v", err, a.Stats().Counters)
		}
		took := time.Since(start)
		payload := make([]byte, 256<<10)
		rand.Read(payload)
		go func() { c.Write(payload) }()
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("echo over the circuit: %v (equal %v)", err, bytes.Equal(got, payload))
		}
		c.Close()
		var peer mycelium.PeerStats
		for _, p := range a.Stats().Peers {
			if p.ID == b.ID() {
				peer = p
			}
		}
		if peer.Path != "circuit" || peer.Hops != 1 || len(peer.Via) != 1 {
			t.Fatalf("A's peer B: %+v, want path circuit through one relay", peer)
		}
		relayed := uint64(0)
		for _, p := range pubs {
			if p.ID() == peer.Via[0] {
				relayed = p.Stats().Counters.CircuitsRelayed
			}
		}
		if relayed != 1 || a.Stats().Counters.CircuitsBuilt != 1 || a.Stats().Counters.PunchSkipped != 1 {
			t.Errorf("relay carried %d circuits; A built %d and skipped %d punches; want 1, 1, 1", relayed, a.Stats().Counters.CircuitsBuilt, a.Stats().Counters.PunchSkipped)
		}
		t.Logf("A reached B through %s in %v (virtual), 256 KiB echoed", peer.Via[0].Short(), took)
	})
}
