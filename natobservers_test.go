package mycelium

import (
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/registry"
)

// TestNATObserversSkipOwnAddress: a record that lists our own address
// (a NAT-bound node's first record names its private address, and every
// home LAN is 192.168.1.x) is no observer for us: a Binding request sent
// there comes back to us, reports our own address as mapped, and would
// make us take ourselves for public. The 200-node netlab saw exactly
// that. A record with another address is an observer.
func TestNATObserversSkipOwnAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := labCircuitNodes(t, 1, nil)[0]
		ownAP := n.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
		other := netip.MustParseAddrPort("203.0.113.99:4433")
		now := time.Now()
		var raws [][]byte
		for _, listen := range []netip.AddrPort{ownAP, other} {
			k, err := GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := registry.Sign(registry.Record{ID: k.ID(), Seq: 1, Issued: now.Truncate(time.Second), Lifetime: time.Hour,
				Inbound: true, Listen: []netip.AddrPort{listen}}, k.Private())
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, raw)
		}
		got := make(chan []netip.AddrPort, 1)
		o := n.overlay
		if !o.post(func() {
			for _, raw := range raws {
				o.applyReg(o.reg.HandleBroadcast(time.Now(), raw))
			}
			got <- o.natObservers()
		}) {
			t.Fatal("node closed")
		}
		obs := <-got
		if slices.Contains(obs, ownAP) {
			t.Fatalf("observers %v include our own address %v", obs, ownAP)
		}
		if !slices.Contains(obs, other) {
			t.Fatalf("observers %v lack the other node's address %v", obs, other)
		}
	})
}
