package netlab_test

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestNATBehaviourSynctest checks each of RFC 4787's nine mapping ×
// filtering combinations for exactly who can reach whom. Host H behind the
// NAT sends from one socket to public server S1 on port p1. Then:
//   - filtering: do replies to H's mapping from S1:p1, from S1:p2 (another
//     port) and from S2:p1 (another address) reach H?
//   - mapping: H sends to S1:p2 and to S2:p1 too; is the public endpoint
//     each server sees the one S1:p1 saw?
func TestNATBehaviourSynctest(t *testing.T) {
	const (
		EI  = netlab.EndpointIndependent
		AD  = netlab.AddressDependent
		APD = netlab.AddressAndPortDependent
	)
	cases := []struct {
		name               string
		mapping, filtering netlab.Behavior
		// Filtering: which replies reach H.
		fromOtherPort, fromOtherAddr bool
		// Mapping: does S1:p2, and does S2:p1, see the mapping S1:p1 saw?
		sameMappingOtherPort, sameMappingOtherAddr bool
	}{
		{"eim_eif_full_cone", EI, EI, true, true, true, true},
		{"eim_adf_restricted_cone", EI, AD, true, false, true, true},
		{"eim_apdf_port_restricted_masquerade", EI, APD, false, false, true, true},
		{"adm_eif", AD, EI, true, true, true, false},
		{"adm_adf", AD, AD, true, false, true, false},
		{"adm_apdf", AD, APD, false, false, true, false},
		{"apdm_eif", APD, EI, true, true, false, false},
		{"apdm_adf", APD, AD, true, false, false, false},
		{"apdm_apdf_symmetric", APD, APD, false, false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lab := newLab(t)
				nat := addNAT(t, lab, natConfig(func(c *netlab.NATConfig) {
					c.Mapping, c.Filtering = tc.mapping, tc.filtering
				}))
				h := listen(t, addHost(t, nat, lanAddr), 5000)
				s1, s2 := addHost(t, lab, server1), addHost(t, lab, server2)
				s1p1, s1p2, s2p1 := listen(t, s1, 3478), listen(t, s1, 3479), listen(t, s2, 3478)

				// H opens a mapping towards S1:p1 only.
				send(t, h, addrOf(s1p1), "to s1p1")
				_, m1 := mustRecv(t, s1p1)
				if m1.Addr() != natAddr {
					t.Fatalf("S1 saw H at %v, want the NAT's address %v", m1, natAddr)
				}

				// Filtering.
				reaches := func(from *netlab.Conn, want bool) {
					t.Helper()
					msg := fmt.Sprintf("reply from %v", addrOf(from))
					send(t, from, m1, msg)
					got, src, ok := recvWithin(t, h, time.Second)
					switch {
					case ok && !want:
						t.Errorf("%q reached H, want it filtered (%v filtering)", got, tc.filtering)
					case !ok && want:
						t.Errorf("%s did not reach H (%v filtering)", msg, tc.filtering)
					case ok && (got != msg || src != addrOf(from)):
						t.Errorf("H read %q from %v, want %q from %v", got, src, msg, addrOf(from))
					}
				}
				reaches(s1p1, true)
				reaches(s1p2, tc.fromOtherPort)
				reaches(s2p1, tc.fromOtherAddr)
				filtered := uint64(0)
				if !tc.fromOtherPort {
					filtered++
				}
				if !tc.fromOtherAddr {
					filtered++
				}
				if got := lab.Stats().Dropped[netlab.DropFiltered]; got != filtered {
					t.Errorf("Stats: %d datagrams filtered, want %d", got, filtered)
				}

				// Mapping.
				send(t, h, addrOf(s1p2), "to s1p2")
				_, m2 := mustRecv(t, s1p2)
				send(t, h, addrOf(s2p1), "to s2p1")
				_, m3 := mustRecv(t, s2p1)
				if (m2 == m1) != tc.sameMappingOtherPort {
					t.Errorf("S1:p1 saw %v, S1:p2 saw %v: want same=%v (%v mapping)", m1, m2, tc.sameMappingOtherPort, tc.mapping)
				}
				if (m3 == m1) != tc.sameMappingOtherAddr {
					t.Errorf("S1:p1 saw %v, S2:p1 saw %v: want same=%v (%v mapping)", m1, m3, tc.sameMappingOtherAddr, tc.mapping)
				}
				if m2.Addr() != natAddr || m3.Addr() != natAddr {
					t.Errorf("servers saw %v and %v, want the NAT's address", m2, m3)
				}
				wantMappings := 1
				if !tc.sameMappingOtherPort {
					wantMappings++
				}
				if !tc.sameMappingOtherAddr {
					wantMappings++
				}
				if got := nat.Mappings(); got != wantMappings {
					t.Errorf("NAT holds %d mappings, want %d", got, wantMappings)
				}
				// Whoever H has now sent to can answer, whatever the
				// filtering, through the mapping that server saw.
				for _, c := range []struct {
					s  *netlab.Conn
					to netip.AddrPort
				}{{s1p2, m2}, {s2p1, m3}} {
					send(t, c.s, c.to, "answer")
					if got, from := mustRecv(t, h); got != "answer" || from != addrOf(c.s) {
						t.Errorf("H read %q from %v, want an answer from %v", got, from, addrOf(c.s))
					}
				}
			})
		})
	}
}
