package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/control"
)

// fileConfig is the --config file: JSON, every key optional, unknown keys
// refused. Flags given on the command line win over the file.
type fileConfig struct {
	Key              string   `json:"key"`
	Listen           string   `json:"listen"`
	Bootstrap        []string `json:"bootstrap"`
	Control          string   `json:"control"`
	Relay            bool     `json:"relay"`
	LogLevel         string   `json:"log_level"`
	HandshakeTimeout duration `json:"handshake_timeout"`
	PunchTTL         *int     `json:"punch_ttl"`
	CircuitRelays    int      `json:"circuit_relays"`
}

// duration is a time.Duration written as "5s" in JSON.
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

const maxConfigFile = 1 << 20

func loadFileConfig(path string) (fileConfig, error) {
	var fc fileConfig
	f, err := os.Open(path)
	if err != nil {
		return fc, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > maxConfigFile {
		return fc, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fc, fmt.Errorf("config %s: data after the JSON object", path)
	}
	return fc, nil
}

func runRelay(ctx context.Context, e *env, args []string) error {
	return runNodeRole(ctx, e, args, true)
}

func runNode(ctx context.Context, e *env, args []string) error {
	return runNodeRole(ctx, e, args, false)
}

func runNodeRole(ctx context.Context, e *env, args []string, relay bool) error {
	name, about := "node", "Runs a node in the foreground until SIGINT or SIGTERM. A missing key file is created."
	if relay {
		name, about = "relay", "Runs a node with the relay role on, in the foreground until SIGINT or SIGTERM.\n(Every node relays circuits; the role tells nodes behind NATs to pick this one as a home relay.)"
	}
	fs := newFlags(e, name, "[flags]", about)
	keyPath := fs.String("key", defaultKeyPath(), "key file (created if missing)")
	listen := fs.String("listen", "0.0.0.0:4242", "UDP address to listen on")
	bootstrap := fs.String("bootstrap", "", "peers to connect to at start: ID@HOST:PORT[,ID@HOST:PORT...]")
	ctl := fs.String("control", control.DefaultAddr(), "control API address: unix:PATH or loopback HOST:PORT (env "+control.EnvControl+")")
	configPath := fs.String("config", "", "JSON config file (keys: key, listen, bootstrap, control, relay, log_level, handshake_timeout, punch_ttl, circuit_relays)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	handshake := fs.Duration("handshake-timeout", 5*time.Second, "bound on a QUIC handshake; dials to silent addresses fail after this")
	punchTTL := fs.Int("punch-ttl", mycelium.DefaultConfig().PunchTTL, "IP time to live of the packets that open our NAT before a hole punch (0: send none)")
	circuitRelays := fs.Int("circuit-relays", mycelium.DefaultConfig().CircuitRelays, "fewest relays in a circuit this node builds (more only when the target needs them)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, 0); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *configPath != "" {
		fc, err := loadFileConfig(*configPath)
		if err != nil {
			return err
		}
		apply := func(flagName string, fileSet bool, assign func()) {
			if !set[flagName] && fileSet {
				assign()
			}
		}
		apply("key", fc.Key != "", func() { *keyPath = fc.Key })
		apply("listen", fc.Listen != "", func() { *listen = fc.Listen })
		apply("bootstrap", len(fc.Bootstrap) > 0, func() { *bootstrap = strings.Join(fc.Bootstrap, ",") })
		apply("control", fc.Control != "" && e.getenv(control.EnvControl) == "", func() { *ctl = fc.Control })
		apply("log-level", fc.LogLevel != "", func() { *logLevel = fc.LogLevel })
		apply("handshake-timeout", fc.HandshakeTimeout != 0, func() { *handshake = time.Duration(fc.HandshakeTimeout) })
		apply("punch-ttl", fc.PunchTTL != nil, func() { *punchTTL = *fc.PunchTTL })
		apply("circuit-relays", fc.CircuitRelays != 0, func() { *circuitRelays = fc.CircuitRelays })
		relay = relay || fc.Relay
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("bad --log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	key, created, err := mycelium.LoadOrCreateKeyFile(*keyPath)
	if err != nil {
		return err
	}
	if created {
		log.Info("created a new node key", "file", *keyPath)
	}
	cfg := mycelium.DefaultConfig()
	cfg.Key = key
	cfg.ListenAddr = *listen
	cfg.Relay = relay
	cfg.HandshakeTimeout = *handshake
	cfg.PunchTTL = *punchTTL
	cfg.CircuitRelays = *circuitRelays
	cfg.Logger = log
	for _, p := range splitList(*bootstrap) {
		peer, err := mycelium.ParsePeer(p)
		if err != nil {
			return fmt.Errorf("--bootstrap %q: %w", p, err)
		}
		if peer.Addr == nil {
			return usagef("--bootstrap %q needs an address: ID@HOST:PORT", p)
		}
		cfg.Bootstrap = append(cfg.Bootstrap, peer)
	}
	n, err := mycelium.New(cfg)
	if err != nil {
		return err
	}
	ln, err := control.Listen(*ctl)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		ln.Close()
		return err
	}
	srv := control.NewServer(n, log)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// The one line a script can wait for: the node is up and its control
	// API answers.
	log.Info("ready", "id", n.ID().String(), "listen", n.LocalAddr().String(), "control", *ctl)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("control API stopped", "err", err)
	}
	if relayed := countRelayed(n); relayed > 0 {
		// Give the circuits we carry time to end or move; new ones are
		// refused meanwhile. The drain has its own deadline
		// (RelayResources.DrainTimeout); a second SIGINT or SIGTERM (an
		// operator's second Ctrl-C) cuts it short. A supervisor sends one
		// signal, then kills: give it a stop timeout longer than the
		// drain's.
		log.Info("draining relayed circuits (signal again to stop now)", "circuits", relayed, "deadline", cfg.RelayResources.DrainTimeout)
		dctx, stopDrain := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		ended, derr := n.Drain(dctx)
		stopDrain()
		log.Info("drained", "ended_at_deadline", ended, "err", derr)
	}
	srv.Close()
	closeErr := n.Close()
	if strings.HasPrefix(*ctl, "unix:") {
		os.Remove(strings.TrimPrefix(*ctl, "unix:"))
	}
	return errors.Join(err, closeErr)
}

// countRelayed returns how many circuits n carries for others.
func countRelayed(n *mycelium.Node) int {
	k := 0
	for _, c := range n.Circuits() {
		if c.Role == "relay" {
			k++
		}
	}
	return k
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
