package mycelium

import (
	"errors"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := DefaultConfig()
	good.Key = key
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultConfig with a key: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no_key", func(c *Config) { c.Key = nil }},
		{"no_logger", func(c *Config) { c.Logger = nil }},
		{"no_listen_addr", func(c *Config) { c.ListenAddr = "" }},
		{"bad_listen_addr", func(c *Config) { c.ListenAddr = "not an address" }},
		{"zero_handshake_timeout", func(c *Config) { c.HandshakeTimeout = 0 }},
		{"zero_idle_timeout", func(c *Config) { c.IdleTimeout = 0 }},
		{"keepalive_over_idle", func(c *Config) { c.KeepAlive = c.IdleTimeout }},
		{"zero_header_timeout", func(c *Config) { c.StreamHeaderTimeout = 0 }},
		{"zero_max_peers", func(c *Config) { c.Resources.MaxPeers = 0 }},
		{"zero_streams_per_peer", func(c *Config) { c.Resources.MaxStreamsPerPeer = 0 }},
		{"zero_backlog", func(c *Config) { c.Resources.AcceptBacklog = 0 }},
		{"zero_pending", func(c *Config) { c.Resources.MaxPendingStreams = 0 }},
		{"tiny_stream_window", func(c *Config) { c.Resources.MaxStreamReceiveWindow = 1000 }},
		{"conn_window_below_stream", func(c *Config) { c.Resources.MaxConnReceiveWindow = c.Resources.MaxStreamReceiveWindow - 1 }},
		{"bootstrap_self", func(c *Config) { c.Bootstrap = []Peer{{ID: key.ID(), Addr: nil}} }},
		{"bootstrap_no_addr", func(c *Config) {
			other, _ := GenerateKey()
			c.Bootstrap = []Peer{{ID: other.ID()}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate = %v, want ErrBadConfig", err)
			}
			if _, err := New(c); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("New = %v, want ErrBadConfig", err)
			}
		})
	}
}
