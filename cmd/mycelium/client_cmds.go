package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/control"
)

// DefaultService is the service `dial` and `forward` use when the target
// names none.
const DefaultService = "default"

func controlFlag(fs *flagSet) *string {
	return fs.String("control", control.DefaultAddr(), "control API address of the node: unix:PATH or loopback HOST:PORT (env "+control.EnvControl+")")
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "[--json]", "Shows a running node's ID, listen addresses, services and connected peers.")
	ctl := controlFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (keys: id, role, listen, peers[id, path, addr, rtt_ms, ...], services, active, passive, known, nat{mapping, filtering, reflexive, public, observers, stun}, counters, membership, broadcast, registry, exposes, forwards)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, 0); err != nil {
		return err
	}
	c, err := control.NewClient(*ctl)
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(e.stdout, st)
	return nil
}

func printStatus(w io.Writer, st *control.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", st.ID)
	fmt.Fprintf(tw, "role\t%s\n", st.Role)
	fmt.Fprintf(tw, "listen\t%s\n", strings.Join(st.Listen, ", "))
	fmt.Fprintf(tw, "services\t%s\n", orNone(strings.Join(st.Services, ", ")))
	fmt.Fprintf(tw, "overlay\t%d active, %d passive\n", len(st.Active), st.Passive)
	fmt.Fprintf(tw, "registry\t%d known nodes\n", st.Known)
	fmt.Fprintf(tw, "nat\tmapping %s, filtering %s, reflexive %s\n", st.NAT.Mapping, st.NAT.Filtering, orNone(strings.Join(st.NAT.Reflexive, ", ")))
	tw.Flush()
	fmt.Fprintf(w, "\npeers (%d):\n", len(st.Peers))
	if len(st.Peers) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tPATH\tADDR\tRTT\tSTREAMS\tDIALED BY")
		for _, p := range st.Peers {
			by := "peer"
			if p.Outbound {
				by = "us"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2fms\t%d\t%s\n", p.ID, p.Path, p.Addr, p.RTTMillis, p.Streams, by)
		}
		tw.Flush()
	}
	for _, x := range st.Exposes {
		fmt.Fprintf(w, "expose  %s -> %s (%d streams)\n", x.Service, x.Target, x.Streams)
	}
	for _, f := range st.Forwards {
		fmt.Fprintf(w, "forward %s -> %s/%s (%d connections)\n", f.Listen, f.Peer, f.Service, f.Conns)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// splitTarget splits "NODEID[@HOST:PORT][/SERVICE]" into the peer part and
// the service, checking both.
func splitTarget(s string) (peer, service string, err error) {
	peer, service, hasService := strings.Cut(s, "/")
	if !hasService {
		service = DefaultService
	}
	if _, err := mycelium.ParsePeer(peer); err != nil {
		return "", "", err
	}
	if err := mycelium.ValidateServiceName(service); err != nil {
		return "", "", err
	}
	return peer, service, nil
}

func runDial(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "dial", "NODEID[@HOST:PORT][/SERVICE]",
		"Opens a stream to SERVICE (default \""+DefaultService+"\") on node NODEID through the running node, copies stdin to\nit and it to stdout, like netcat, and exits when both directions are done.\nThe address is a hint for a node the running node does not know yet.")
	ctl := controlFlag(fs)
	timeout := fs.Duration("timeout", control.DefaultDialTimeout, "bound on connecting and opening the stream")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, 1); err != nil {
		return err
	}
	peer, service, err := splitTarget(pos[0])
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	c, err := control.NewClient(*ctl)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, *timeout+5*time.Second)
	conn, err := c.Dial(dctx, control.DialRequest{Peer: peer, Service: service, TimeoutMS: timeout.Milliseconds()})
	cancel()
	if ctx.Err() != nil {
		// Interrupted: whatever failed, it failed because of that.
		if conn != nil {
			conn.Close()
		}
		return errInterrupted
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	upDone := make(chan struct{})
	var upErr error
	go func() {
		defer close(upDone)
		if _, err := io.Copy(conn, e.stdin); err != nil {
			upErr = err
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	_, downErr := io.Copy(e.stdout, conn)
	if ctx.Err() != nil {
		// Interrupted: conn was closed under the copies.
		return errInterrupted
	}
	if downErr != nil {
		// The stream is over; stdin may be blocked on a terminal.
		conn.Close()
		return fmt.Errorf("stream: %w", downErr)
	}
	select {
	case <-upDone:
	case <-ctx.Done():
		// Interrupted while stdin (perhaps a terminal) is still open.
		return errInterrupted
	}
	if upErr != nil && !errors.Is(upErr, io.EOF) {
		return fmt.Errorf("stream: %w", upErr)
	}
	return nil
}

func runExpose(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "expose", "SERVICE HOST:PORT | --remove SERVICE",
		"Makes the running node hand every incoming stream for SERVICE to the local TCP\naddress HOST:PORT, until the node stops or the expose is removed.")
	ctl := controlFlag(fs)
	remove := fs.Bool("remove", false, "stop exposing SERVICE")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	req := control.ExposeRequest{Remove: *remove}
	if *remove {
		if err := wantArgs(pos, 1, 1); err != nil {
			return err
		}
	} else if err := wantArgs(pos, 2, 2); err != nil {
		return err
	} else {
		req.Target = pos[1]
	}
	req.Service = pos[0]
	if err := mycelium.ValidateServiceName(req.Service); err != nil {
		return err
	}
	c, err := control.NewClient(*ctl)
	if err != nil {
		return err
	}
	if err := c.Expose(ctx, req); err != nil {
		return err
	}
	if *remove {
		fmt.Fprintf(e.stdout, "stopped exposing %s\n", req.Service)
	} else {
		fmt.Fprintf(e.stdout, "exposing %s -> %s\n", req.Service, req.Target)
	}
	return nil
}

func runForward(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "forward", "LISTEN_HOST:PORT NODEID[@HOST:PORT][/SERVICE] | --remove LISTEN_HOST:PORT",
		"Makes the running node listen on a local TCP port and carry each accepted\nconnection to SERVICE (default \""+DefaultService+"\") on node NODEID.")
	ctl := controlFlag(fs)
	remove := fs.Bool("remove", false, "stop the forward listening on LISTEN_HOST:PORT")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	req := control.ForwardRequest{Remove: *remove}
	if *remove {
		if err := wantArgs(pos, 1, 1); err != nil {
			return err
		}
	} else {
		if err := wantArgs(pos, 2, 2); err != nil {
			return err
		}
		if req.Peer, req.Service, err = splitTarget(pos[1]); err != nil {
			return err
		}
	}
	req.Listen = pos[0]
	c, err := control.NewClient(*ctl)
	if err != nil {
		return err
	}
	info, err := c.Forward(ctx, req)
	if err != nil {
		return err
	}
	if *remove {
		fmt.Fprintf(e.stdout, "stopped forwarding %s\n", info.Listen)
	} else {
		fmt.Fprintf(e.stdout, "forwarding %s -> %s/%s\n", info.Listen, info.Peer, info.Service)
	}
	return nil
}
