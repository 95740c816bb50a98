package netlab_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/stun/v3"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// This file cross-checks netlab's NAT classes the way the netns test bed
// cross-checks the kernel's: an RFC 5780 behaviour-discovery probe, here a
// small one of our own (pion/stun as the codec) against a STUN server on
// two addresses and two ports, must report each NAT's configured mapping
// and filtering.

const (
	stunPrimaryPort = 3478
	stunAltPort     = 3479
	changeIP        = 0x04 // RFC 5780 §7.2 CHANGE-REQUEST flags
	changePort      = 0x02
)

// stunServer answers binding requests on {ip1, ip2} × {3478, 3479},
// honouring CHANGE-REQUEST by answering from the other address or port.
type stunServer struct {
	socks map[netip.AddrPort]*netlab.Conn
	ip1   netip.Addr
	ip2   netip.Addr
	wg    sync.WaitGroup
}

func startSTUN(t *testing.T, h1, h2 *netlab.Host) *stunServer {
	t.Helper()
	s := &stunServer{socks: map[netip.AddrPort]*netlab.Conn{}, ip1: h1.Addr(), ip2: h2.Addr()}
	for _, h := range []*netlab.Host{h1, h2} {
		for _, port := range []uint16{stunPrimaryPort, stunAltPort} {
			c, err := h.ListenPacket(port)
			if err != nil {
				t.Fatal(err)
			}
			s.socks[netip.AddrPortFrom(h.Addr(), port)] = c
		}
	}
	for local, c := range s.socks {
		s.wg.Go(func() { s.serve(local, c) })
	}
	return s
}

func (s *stunServer) close() {
	for _, c := range s.socks {
		c.Close()
	}
	s.wg.Wait()
}

func (s *stunServer) serve(local netip.AddrPort, c *netlab.Conn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		var flags byte
		if v, err := req.Get(stun.AttrChangeRequest); err == nil && len(v) == 4 {
			flags = v[3]
		}
		ip, port := local.Addr(), local.Port()
		if flags&changeIP != 0 {
			ip = s.ip1
			if ip == local.Addr() {
				ip = s.ip2
			}
		}
		if flags&changePort != 0 {
			port = stunPrimaryPort + stunAltPort - port
		}
		resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())})
		if err != nil {
			continue
		}
		s.socks[netip.AddrPortFrom(ip, port)].WriteToUDPAddrPort(resp.Raw, from)
	}
}

// probe sends one binding request from c to dst and returns the mapped
// address the server saw, or ok=false if no answer came within a second
// of (virtual) time.
func probe(t *testing.T, c *netlab.Conn, dst netip.AddrPort, flags byte) (mapped netip.AddrPort, ok bool) {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if flags != 0 {
		setters = append(setters, stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, flags}})
	}
	req := stun.MustBuild(setters...)
	if _, err := c.WriteToUDPAddrPort(req.Raw, dst); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return netip.AddrPort{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		resp := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if resp.Decode() != nil || resp.TransactionID != req.TransactionID {
			continue // a late answer to an earlier probe
		}
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(resp); err != nil {
			t.Fatalf("answer without XOR-MAPPED-ADDRESS: %v", err)
		}
		ip, _ := netip.AddrFromSlice(xor.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(xor.Port)), true
	}
}

// classify runs RFC 5780 §4.3 (mapping) and §4.4 (filtering) from host h.
func classify(t *testing.T, h *netlab.Host, s *stunServer) (mapping, filtering netlab.Behavior) {
	t.Helper()
	p1 := netip.AddrPortFrom(s.ip1, stunPrimaryPort)
	listen := func() *netlab.Conn {
		c, err := h.ListenPacket(0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	c := listen()
	defer c.Close()
	m1, ok1 := probe(t, c, p1, 0)
	m2, ok2 := probe(t, c, netip.AddrPortFrom(s.ip2, stunPrimaryPort), 0)
	m3, ok3 := probe(t, c, netip.AddrPortFrom(s.ip2, stunAltPort), 0)
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("mapping tests got no answer: %v %v %v", ok1, ok2, ok3)
	}
	switch {
	case m1 == m2:
		mapping = netlab.EndpointIndependent
	case m2 == m3:
		mapping = netlab.AddressDependent
	default:
		mapping = netlab.AddressAndPortDependent
	}

	// Filtering, on a fresh socket so the mapping tests leave no state.
	f := listen()
	defer f.Close()
	if _, ok := probe(t, f, p1, 0); !ok {
		t.Fatal("filtering test I got no answer")
	}
	_, okIPPort := probe(t, f, p1, changeIP|changePort)
	_, okPort := probe(t, f, p1, changePort)
	switch {
	case okIPPort:
		filtering = netlab.EndpointIndependent
	case okPort:
		filtering = netlab.AddressDependent
	default:
		filtering = netlab.AddressAndPortDependent
	}
	return mapping, filtering
}

func TestSynctestSTUNProbeAgreesWithNATClass(t *testing.T) {
	behaviors := []netlab.Behavior{netlab.EndpointIndependent, netlab.AddressDependent, netlab.AddressAndPortDependent}
	for _, m := range behaviors {
		for _, f := range behaviors {
			name := strings.ReplaceAll(fmt.Sprintf("%v_mapping_%v_filtering", m, f), "-", "_")
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					lab, err := netlab.New(netlab.DefaultConfig())
					if err != nil {
						t.Fatal(err)
					}
					defer lab.Close()
					h1, _ := lab.AddHost(netip.MustParseAddr("203.0.113.20"))
					h2, _ := lab.AddHost(netip.MustParseAddr("203.0.113.21"))
					s := startSTUN(t, h1, h2)
					defer s.close()
					cfg := netlab.DefaultNATConfig()
					cfg.Addr = netip.MustParseAddr("198.51.100.7")
					cfg.Mapping, cfg.Filtering = m, f
					nat, err := lab.AddNAT(cfg)
					if err != nil {
						t.Fatal(err)
					}
					h, err := nat.AddHost(netip.MustParseAddr("192.168.7.2"))
					if err != nil {
						t.Fatal(err)
					}
					gotM, gotF := classify(t, h, s)
					if gotM != m || gotF != f {
						t.Fatalf("probe says mapping %v, filtering %v; NAT is configured %v, %v", gotM, gotF, m, f)
					}
				})
			})
		}
	}
	t.Run("no_nat", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab, _ := netlab.New(netlab.DefaultConfig())
			defer lab.Close()
			h1, _ := lab.AddHost(netip.MustParseAddr("203.0.113.20"))
			h2, _ := lab.AddHost(netip.MustParseAddr("203.0.113.21"))
			s := startSTUN(t, h1, h2)
			defer s.close()
			pub, _ := lab.AddHost(netip.MustParseAddr("203.0.113.30"))
			if m, f := classify(t, pub, s); m != netlab.EndpointIndependent || f != netlab.EndpointIndependent {
				t.Fatalf("a public host classified as %v / %v", m, f)
			}
		})
	})
}
