package broadcast

import (
	"errors"
	"testing"

	"github.com/mycelium-net/mycelium/internal/identity"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zero_lazy_push_delay", func(c *Config) { c.LazyPushDelay = 0 }, true},
		{"negative_lazy_push_delay", func(c *Config) { c.LazyPushDelay = -1 }, false},
		{"zero_missing_timeout", func(c *Config) { c.MissingTimeout = 0 }, false},
		{"zero_second_timeout", func(c *Config) { c.SecondTimeout = 0 }, false},
		{"second_timeout_above_first", func(c *Config) { c.SecondTimeout = c.MissingTimeout + 1 }, false},
		{"optimization_off", func(c *Config) { c.OptimizationThreshold = 0 }, true},
		{"negative_threshold", func(c *Config) { c.OptimizationThreshold = -1 }, false},
		{"zero_batch", func(c *Config) { c.MaxIHaveBatch = 0 }, false},
		{"batch_over_wire_limit", func(c *Config) { c.MaxIHaveBatch = MaxIHaveBatch + 1 }, false},
		{"batch_at_wire_limit", func(c *Config) { c.MaxIHaveBatch = MaxIHaveBatch }, true},
		{"zero_cache_size", func(c *Config) { c.CacheSize = 0 }, false},
		{"zero_cache_ttl", func(c *Config) { c.CacheTTL = 0 }, false},
		{"cache_bytes_below_payload", func(c *Config) { c.CacheBytes = c.MaxPayload - 1 }, false},
		{"payload_over_wire_limit", func(c *Config) { c.MaxPayload = MaxPayload + 1 }, false},
		{"negative_payload", func(c *Config) { c.MaxPayload = -1 }, false},
		{"zero_payload", func(c *Config) { c.MaxPayload = 0 }, true},
		{"zero_max_missing", func(c *Config) { c.MaxMissing = 0 }, false},
		{"zero_sweep_interval", func(c *Config) { c.SweepInterval = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate() = %v, want ErrBadConfig", err)
			}
			if _, nerr := New(testID(1), c, nil); (nerr == nil) != tt.ok {
				t.Fatalf("New: err = %v, want ok=%v", nerr, tt.ok)
			}
		})
	}
	if _, err := New(identity.NodeID{}, DefaultConfig(), nil); err == nil {
		t.Fatal("New accepted the zero node ID")
	}
}
