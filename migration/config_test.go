package migration

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if err := noHysteresis().Validate(); err != nil {
		t.Fatalf("config without hysteresis: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"rtt_gain_zero", func(c *Config) { c.RTTGain = 0 }},
		{"rtt_gain_above_one", func(c *Config) { c.RTTGain = 1.5 }},
		{"rtt_gain_nan", func(c *Config) { c.RTTGain = math.NaN() }},
		{"loss_gain_negative", func(c *Config) { c.LossGain = -0.1 }},
		{"loss_gain_nan", func(c *Config) { c.LossGain = math.NaN() }},
		{"loss_penalty_negative", func(c *Config) { c.LossPenalty = -time.Second }},
		{"circuit_factor_below_one", func(c *Config) { c.CircuitFactor = 0.9 }},
		{"circuit_factor_nan", func(c *Config) { c.CircuitFactor = math.NaN() }},
		{"circuit_factor_inf", func(c *Config) { c.CircuitFactor = math.Inf(1) }},
		{"circuit_penalty_negative", func(c *Config) { c.CircuitPenalty = -ms }},
		{"margin_negative", func(c *Config) { c.Margin = -0.1 }},
		{"margin_nan", func(c *Config) { c.Margin = math.NaN() }},
		{"margin_huge", func(c *Config) { c.Margin = 11 }},
		{"min_improvement_negative", func(c *Config) { c.MinImprovement = -ms }},
		{"hold_samples_negative", func(c *Config) { c.HoldSamples = -1 }},
		{"hold_samples_huge", func(c *Config) { c.HoldSamples = maxHoldSamples + 1 }},
		{"hold_time_negative", func(c *Config) { c.HoldTime = -ms }},
		{"dwell_negative", func(c *Config) { c.Dwell = -ms }},
		{"max_dwell_below_dwell", func(c *Config) { c.MaxDwell = c.Dwell - 1 }},
		{"max_dwell_huge", func(c *Config) { c.MaxDwell = maxDuration + 1 }},
		{"backoff_reset_zero", func(c *Config) { c.BackoffReset = 0 }},
		{"suspect_after_zero", func(c *Config) { c.SuspectAfter = 0 }},
		{"suspect_after_huge", func(c *Config) { c.SuspectAfter = maxSuspectAfter + 1 }},
		{"probe_timeout_zero", func(c *Config) { c.ProbeTimeout = 0 }},
		{"upgrade_backoff_zero", func(c *Config) { c.UpgradeBackoff = 0 }},
		{"max_upgrade_backoff_below", func(c *Config) { c.MaxUpgradeBackoff = c.UpgradeBackoff - 1 }},
		{"fallback_retry_zero", func(c *Config) { c.FallBackRetry = 0 }},
		{"max_fallback_retry_below", func(c *Config) { c.MaxFallBackRetry = c.FallBackRetry - 1 }},
		{"fallback_retry_huge", func(c *Config) { c.FallBackRetry, c.MaxFallBackRetry = maxDuration+1, maxDuration+1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate = %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestConfigDwell(t *testing.T) {
	c := DefaultConfig()
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for k, w := range want {
		if got := c.dwell(k); got != w*time.Second {
			t.Fatalf("dwell(%d) = %v, want %v", k, got, w*time.Second)
		}
	}
	if got := c.dwell(maxBackoffSteps); got != c.MaxDwell {
		t.Fatalf("dwell(max) = %v", got)
	}
	if got := noHysteresis().dwell(5); got != 0 {
		t.Fatalf("dwell without a dwell = %v", got)
	}
}
