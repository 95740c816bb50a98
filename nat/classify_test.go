package nat

import (
	"net/netip"
	"testing"

	"github.com/mycelium-net/mycelium/registry"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestClassifyMapping(t *testing.T) {
	const (
		o1a = "198.51.100.1:3478"
		o1b = "198.51.100.1:3479"
		o2a = "198.51.100.2:3478"
		o2b = "198.51.100.2:3479"
		o1c = "198.51.100.1:3480"
		m1  = "203.0.113.5:40000"
		m2  = "203.0.113.5:40001"
		m3  = "203.0.113.5:40002"
	)
	obs := func(pairs ...string) []Observation {
		var o []Observation
		for i := 0; i < len(pairs); i += 2 {
			o = append(o, Observation{Observer: ap(pairs[i]), Mapped: ap(pairs[i+1])})
		}
		return o
	}
	cases := []struct {
		name string
		obs  []Observation
		want registry.NATClass
	}{
		{"none", nil, registry.NATUnknown},
		{"one_observer", obs(o1a, m1), registry.NATUnknown},
		{"one_observer_twice", obs(o1a, m1, o1a, m1), registry.NATUnknown},
		{"eim_two_ips", obs(o1a, m1, o2a, m1), registry.NATEndpointIndependent},
		{"eim_all_four", obs(o1a, m1, o1b, m1, o2a, m1, o2b, m1), registry.NATEndpointIndependent},
		{"one_ip_equal_unknown", obs(o1a, m1, o1b, m1), registry.NATUnknown},
		{"adm", obs(o1a, m1, o1b, m1, o2a, m2), registry.NATAddressDependent},
		{"adm_both_pairs", obs(o1a, m1, o1b, m1, o2a, m2, o2b, m2), registry.NATAddressDependent},
		{"apdm_same_ip", obs(o1a, m1, o1b, m2), registry.NATAddressAndPortDependent},
		{"apdm_all_four", obs(o1a, m1, o1b, m2, o2a, m3, o2b, m1), registry.NATAddressAndPortDependent},
		{"apdm_one_pair_differs", obs(o1a, m1, o1b, m1, o2a, m2, o2b, m3), registry.NATAddressAndPortDependent},
		{"eim_one_collision", obs(o1a, m1, o1b, m2, o2a, m1, o2b, m1), registry.NATEndpointIndependent},
		{"eim_one_collision_other_ip", obs(o1a, m1, o1b, m1, o2a, m1, o2b, m3), registry.NATEndpointIndependent},
		{"three_of_four_one_ip", obs(o1a, m1, o1b, m1, o1a, m1, o2a, m2), registry.NATAddressDependent},     // a repeat is not a third
		{"three_ports_one_ip_agree", obs(o1a, m1, o1b, m1, o1c, m1, o2a, m2), registry.NATAddressDependent}, // the agreeing three share one IP
		{"three_observers_one_odd", obs(o1a, m1, o1b, m2, o2a, m1), registry.NATAddressAndPortDependent},
		{"differs_across_ips_no_pair", obs(o1a, m1, o2a, m2), registry.NATUnknown},
		{"invalid_ignored", append(obs(o1a, m1), Observation{Observer: ap(o2a)}), registry.NATUnknown},
		{"mapped_v4_in_v6_equal", []Observation{
			{Observer: ap(o1a), Mapped: ap(m1)},
			{Observer: ap(o2a), Mapped: ap("[::ffff:203.0.113.5]:40000")}}, registry.NATEndpointIndependent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ClassifyMapping(c.obs); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestPublic(t *testing.T) {
	local := ap("203.0.113.5:4433")
	o := func(m string) Observation { return Observation{Observer: ap("198.51.100.1:3478"), Mapped: ap(m)} }
	cases := []struct {
		name  string
		local netip.AddrPort
		obs   []Observation
		want  bool
	}{
		{"all_equal", local, []Observation{o("203.0.113.5:4433"), o("203.0.113.5:4433")}, true},
		{"one_differs", local, []Observation{o("203.0.113.5:4433"), o("203.0.113.5:4434")}, false},
		{"other_ip", local, []Observation{o("203.0.113.6:4433")}, false},
		{"no_observations", local, nil, false},
		{"wildcard_local", ap("0.0.0.0:4433"), []Observation{o("203.0.113.5:4433")}, false},
		{"invalid_local", netip.AddrPort{}, []Observation{o("203.0.113.5:4433")}, false},
		{"mapped_local", ap("[::ffff:203.0.113.5]:4433"), []Observation{o("203.0.113.5:4433")}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Public(c.local, c.obs); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestClassifyFiltering(t *testing.T) {
	ipRecv := FilterProbe{OtherIP: true, Received: true}
	ipLost := FilterProbe{OtherIP: true}
	portRecv := FilterProbe{Received: true}
	portLost := FilterProbe{}
	cases := []struct {
		name   string
		probes []FilterProbe
		want   registry.NATClass
	}{
		{"none", nil, registry.NATUnknown},
		{"eif", []FilterProbe{ipRecv, portRecv}, registry.NATEndpointIndependent},
		{"eif_ip_only", []FilterProbe{ipRecv}, registry.NATEndpointIndependent},
		{"eif_one_of_two_ips", []FilterProbe{ipLost, ipRecv, portLost}, registry.NATEndpointIndependent},
		{"adf", []FilterProbe{ipLost, portRecv}, registry.NATAddressDependent},
		{"apdf", []FilterProbe{ipLost, portLost}, registry.NATAddressAndPortDependent},
		{"apdf_repeated", []FilterProbe{ipLost, ipLost, portLost, portLost}, registry.NATAddressAndPortDependent},
		{"port_recv_only_unknown", []FilterProbe{portRecv}, registry.NATUnknown},
		{"port_lost_only_unknown", []FilterProbe{portLost}, registry.NATUnknown},
		{"ip_lost_only_unknown", []FilterProbe{ipLost}, registry.NATUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ClassifyFiltering(c.probes); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
