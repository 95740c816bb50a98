// Package demo runs `mycelium demo`: a small network of real nodes inside
// one process, on loopback, that shows each capability working. Every later
// capability (NATs, circuits, migration) adds its step here.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/echo"
)

// Options configure a demo run.
type Options struct {
	Nodes    int       // nodes to start, 2..16
	Bytes    int       // bytes each transfer carries
	Progress io.Writer // human-readable progress; nil for none
}

// DefaultOptions: 3 nodes, 1 MiB per transfer.
func DefaultOptions() Options { return Options{Nodes: 3, Bytes: 1 << 20} }

// Validate checks the options.
func (o Options) Validate() error {
	if o.Nodes < 2 || o.Nodes > 16 {
		return fmt.Errorf("demo: --nodes must be 2..16, got %d", o.Nodes)
	}
	if o.Bytes < 1 || o.Bytes > 1<<30 {
		return fmt.Errorf("demo: --bytes must be 1..%d, got %d", 1<<30, o.Bytes)
	}
	return nil
}

// Report is what the demo saw. Its JSON keys are an interface: later
// versions add keys and never rename them.
type Report struct {
	OK        bool       `json:"ok"`
	Nodes     []NodeInfo `json:"nodes"`
	Transfers []Transfer `json:"transfers"`
	Checks    []Check    `json:"checks"`
}

// NodeInfo names one demo node.
type NodeInfo struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Listen string `json:"listen"`
}

// Transfer is one echo round trip.
type Transfer struct {
	From     string  `json:"from"`
	To       string  `json:"to"`
	Service  string  `json:"service"`
	Path     string  `json:"path"`
	Bytes    int     `json:"bytes"`
	Millis   float64 `json:"ms"`
	MBPerSec float64 `json:"mb_per_s"` // bytes each way / time, in 10^6 B/s
	RTTMs    float64 `json:"rtt_ms"`
	OK       bool    `json:"ok"`
	Error    string  `json:"error,omitempty"`
}

// Check is one behaviour the demo checks.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

type demoNode struct {
	name string
	node *mycelium.Node
}

// Run starts the network, runs every step and tears it all down.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	out := opts.Progress
	if out == nil {
		out = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	var nodes []demoNode
	defer func() {
		for _, d := range nodes {
			d.node.Close()
		}
		wg.Wait()
	}()
	start := func(name string, bootstrap []mycelium.Peer) (demoNode, error) {
		key, err := mycelium.GenerateKey()
		if err != nil {
			return demoNode{}, err
		}
		cfg := mycelium.DefaultConfig()
		cfg.Key = key
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.Bootstrap = bootstrap
		n, err := mycelium.New(cfg)
		if err != nil {
			return demoNode{}, err
		}
		if err := n.Start(); err != nil {
			return demoNode{}, err
		}
		d := demoNode{name, n}
		nodes = append(nodes, d)
		l, err := n.Listen("echo")
		if err != nil {
			return demoNode{}, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); echo.Serve(l) }()
		return d, nil
	}

	rep := &Report{OK: true}
	fmt.Fprintf(out, "mycelium demo: %d nodes in this process, on loopback UDP (no root, no setup)\n\n", opts.Nodes)
	hub, err := start("n0", nil)
	if err != nil {
		return nil, err
	}
	for i := 1; i < opts.Nodes; i++ {
		if _, err := start(fmt.Sprintf("n%d", i), []mycelium.Peer{{ID: hub.node.ID(), Addr: hub.node.LocalAddr()}}); err != nil {
			return nil, err
		}
	}
	for _, d := range nodes {
		rep.Nodes = append(rep.Nodes, NodeInfo{Name: d.name, ID: d.node.ID().String(), Listen: d.node.LocalAddr().String()})
		fmt.Fprintf(out, "  %-4s %s  %s\n", d.name, d.node.ID(), d.node.LocalAddr())
	}

	// Every node but the hub was told only the hub's address and connects
	// to it at start. Wait for those connections, then hand out the other
	// addresses: the registry (a later version) will spread them itself.
	for _, d := range nodes[1:] {
		if err := d.node.Connect(ctx, hub.node.ID(), nil); err != nil {
			return nil, fmt.Errorf("demo: %s bootstrap to n0: %w", d.name, err)
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a.node != b.node {
				a.node.AddPeerAddr(b.node.ID(), b.node.LocalAddr())
			}
		}
	}
	fmt.Fprintf(out, "\n  n1..n%d bootstrapped to n0; every node now knows every address\n", opts.Nodes-1)

	fmt.Fprintf(out, "\ntransfers: %d random bytes each, echoed back and compared byte for byte\n", opts.Bytes)
	for i, from := range nodes {
		to := nodes[(i+1)%len(nodes)]
		tr := transfer(ctx, from, to, opts.Bytes)
		rep.Transfers = append(rep.Transfers, tr)
		rep.OK = rep.OK && tr.OK
		status := "ok"
		if !tr.OK {
			status = "FAILED: " + tr.Error
		}
		fmt.Fprintf(out, "  %s -> %s/%s  %s  %8.1f ms  %7.1f MB/s  rtt %.2f ms  %s\n",
			tr.From, tr.To, tr.Service, tr.Path, tr.Millis, tr.MBPerSec, tr.RTTMs, status)
	}

	fmt.Fprintln(out, "\nchecks:")
	for _, c := range []func(context.Context, []demoNode) Check{checkIdentity, checkUnknownService, checkSimultaneousDial, checkBroadcast, checkRegistry, checkNATs, checkNATClassification, checkHolePunch, checkCircuit, checkRelayDrain, checkPathChange} {
		ch := c(ctx, nodes)
		rep.Checks = append(rep.Checks, ch)
		rep.OK = rep.OK && ch.OK
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(out, "  [%s] %-20s %s\n", mark, ch.Name, ch.Detail)
	}
	if rep.OK {
		fmt.Fprintln(out, "\nall checks passed")
	} else {
		fmt.Fprintln(out, "\nSOME CHECKS FAILED")
	}
	return rep, nil
}

func transfer(ctx context.Context, from, to demoNode, size int) Transfer {
	tr := Transfer{From: from.name, To: to.name, Service: "echo", Bytes: size}
	fail := func(err error) Transfer {
		tr.Error = err.Error()
		return tr
	}
	t0 := time.Now()
	c, err := from.node.Dial(ctx, to.node.ID(), "echo")
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	if err := echo.RoundTrip(c, size); err != nil {
		return fail(err)
	}
	el := time.Since(t0)
	tr.Millis = float64(el.Microseconds()) / 1000
	tr.MBPerSec = float64(size) / el.Seconds() / 1e6
	for _, p := range from.node.Stats().Peers {
		if p.ID == to.node.ID() {
			tr.Path, tr.RTTMs = p.Path, p.RTTMillis
		}
	}
	tr.OK = true
	return tr
}

func checkIdentity(ctx context.Context, nodes []demoNode) Check {
	ch := Check{Name: "identity_mismatch"}
	impostor, err := mycelium.GenerateKey()
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	a, b := nodes[0], nodes[1]
	a.node.AddPeerAddr(impostor.ID(), b.node.LocalAddr())
	_, err = a.node.Dial(ctx, impostor.ID(), "echo")
	ch.OK = errors.Is(err, mycelium.ErrIdentityMismatch)
	ch.Detail = fmt.Sprintf("%s dials ID %s… at %s's address: %v", a.name, impostor.ID().Short(), b.name, err)
	return ch
}

func checkUnknownService(ctx context.Context, nodes []demoNode) Check {
	ch := Check{Name: "unknown_service"}
	_, err := nodes[0].node.Dial(ctx, nodes[1].node.ID(), "no-such-service")
	ch.OK = errors.Is(err, mycelium.ErrUnknownService)
	ch.Detail = fmt.Sprintf("%s dials %s/no-such-service: %v", nodes[0].name, nodes[1].name, err)
	return ch
}

// checkSimultaneousDial starts two fresh nodes that dial each other at the
// same moment and checks that both get a stream and that both end up
// holding the same single connection: the one dialed by the lower ID.
func checkSimultaneousDial(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "simultaneous_dial"}
	var wg sync.WaitGroup
	defer wg.Wait() // after the deferred Closes below, which end serveEcho
	var pair [2]*mycelium.Node
	for i := range pair {
		key, _ := mycelium.GenerateKey()
		cfg := mycelium.DefaultConfig()
		cfg.Key, cfg.ListenAddr = key, "127.0.0.1:0"
		n, err := mycelium.New(cfg)
		if err == nil {
			err = n.Start()
		}
		if err != nil {
			ch.Detail = err.Error()
			return ch
		}
		defer n.Close()
		l, _ := n.Listen("echo")
		wg.Go(func() { echo.Serve(l) })
		pair[i] = n
	}
	x, y := pair[0], pair[1]
	x.AddPeerAddr(y.ID(), y.LocalAddr())
	y.AddPeerAddr(x.ID(), x.LocalAddr())
	startGun := make(chan struct{})
	errs := make(chan error, 2)
	for _, p := range [][2]*mycelium.Node{{x, y}, {y, x}} {
		go func() {
			<-startGun
			c, err := p[0].Dial(ctx, p[1].ID(), "echo")
			if err == nil {
				_, err = c.Write([]byte("hi"))
				c.Close()
			}
			errs <- err
		}()
	}
	close(startGun)
	for range 2 {
		if err := <-errs; err != nil {
			ch.Detail = "a dial failed: " + err.Error()
			return ch
		}
	}
	// Both sides settle on the same connection once each has seen both;
	// poll the two snapshots for that, bounded.
	lower := x.ID()
	if y.ID().Less(lower) {
		lower = y.ID()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		xs, ys := x.Stats().Peers, y.Stats().Peers
		if len(xs) == 1 && len(ys) == 1 && xs[0].Outbound != ys[0].Outbound {
			dialer := y.ID()
			if xs[0].Outbound {
				dialer = x.ID()
			}
			ch.OK = dialer == lower
			ch.Detail = fmt.Sprintf("both dials succeeded; both nodes kept one connection, dialed by %s… (the lower ID: %v); duplicates closed: %d",
				dialer.Short(), dialer == lower, x.Stats().Counters.DuplicateConns+y.Stats().Counters.DuplicateConns)
			return ch
		}
		if time.Now().After(deadline) {
			ch.Detail = fmt.Sprintf("nodes did not agree on one connection: %d and %d peers", len(xs), len(ys))
			return ch
		}
		time.Sleep(10 * time.Millisecond)
	}
}
