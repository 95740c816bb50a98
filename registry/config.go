package registry

import (
	"fmt"
	"time"
)

// Config tunes a Machine. Start from DefaultConfig; New calls Validate.
type Config struct {
	// MaxRecords bounds the records held, tombstones and our own record
	// included. When it is reached, a record about a node not yet held
	// evicts the held record that expires soonest (ties: lowest ID),
	// never our own; if the newcomer itself expires no later than that
	// one, the newcomer is dropped instead. Both count as Evicted.
	// Default 65,536 (guess: a 10,000-node overlay with room to spare,
	// about 64 MiB of records at worst).
	MaxRecords int

	// Lifetime is the lifetime of our own record, in whole seconds, at
	// most MaxLifetime. Default 30 min (guess: three refreshes).
	Lifetime time.Duration

	// RefreshInterval is how often our record is signed again with a new
	// Seq and Issued and published, so that it never expires while we
	// run. Each wait is drawn uniformly from [3/4, 1] of it, so nodes do
	// not refresh in lockstep. Must be below Lifetime. Default 10 min
	// (guess).
	RefreshInterval time.Duration

	// LeaveLifetime is the lifetime of the tombstone Leave publishes, in
	// whole seconds. Default 2 min (guess: long enough to cross the
	// overlay several times).
	LeaveLifetime time.Duration

	// DigestChunk bounds the entries of one DIGEST message, at most
	// MaxDigestEntries. Default 512 (guess: 20 KiB per message).
	DigestChunk int

	// MaxRecordsPerPeerPerSecond is the refill rate of the token bucket
	// each sender of RECORDS has; the bucket holds ten seconds' worth.
	// Records beyond it are dropped unread and counted as RateLimited.
	// Broadcasts are not limited here (Plumtree has its own limits).
	// Default 2,000 (guess: a joining node learns 20,000 records from one
	// neighbour at once, 65,536 in under 25 s).
	MaxRecordsPerPeerPerSecond int

	// SweepInterval is how often expired records are removed (Changed
	// with Removed). Default 30 s (guess).
	SweepInterval time.Duration
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		MaxRecords:                 65536,
		Lifetime:                   30 * time.Minute,
		RefreshInterval:            10 * time.Minute,
		LeaveLifetime:              2 * time.Minute,
		DigestChunk:                512,
		MaxRecordsPerPeerPerSecond: 2000,
		SweepInterval:              30 * time.Second,
	}
}

// Bounds on the config, so that a typo cannot make a node hold unbounded
// state.
const (
	MaxMaxRecords = 1 << 22
	MaxRecordRate = 1 << 20
)

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	life := func(d time.Duration) bool { return d >= time.Second && d <= MaxLifetime && d%time.Second == 0 }
	switch {
	case c.MaxRecords < 1 || c.MaxRecords > MaxMaxRecords:
		return fmt.Errorf("%w: MaxRecords %d, want 1..%d", ErrBadConfig, c.MaxRecords, MaxMaxRecords)
	case !life(c.Lifetime):
		return fmt.Errorf("%w: Lifetime %v, want whole seconds in 1s..%v", ErrBadConfig, c.Lifetime, MaxLifetime)
	case c.RefreshInterval <= 0 || c.RefreshInterval >= c.Lifetime:
		return fmt.Errorf("%w: RefreshInterval %v, want > 0 and < Lifetime (%v)", ErrBadConfig, c.RefreshInterval, c.Lifetime)
	case !life(c.LeaveLifetime):
		return fmt.Errorf("%w: LeaveLifetime %v, want whole seconds in 1s..%v", ErrBadConfig, c.LeaveLifetime, MaxLifetime)
	case c.DigestChunk < 1 || c.DigestChunk > MaxDigestEntries:
		return fmt.Errorf("%w: DigestChunk %d, want 1..%d", ErrBadConfig, c.DigestChunk, MaxDigestEntries)
	case c.MaxRecordsPerPeerPerSecond < 1 || c.MaxRecordsPerPeerPerSecond > MaxRecordRate:
		return fmt.Errorf("%w: MaxRecordsPerPeerPerSecond %d, want 1..%d", ErrBadConfig, c.MaxRecordsPerPeerPerSecond, MaxRecordRate)
	case c.SweepInterval <= 0:
		return fmt.Errorf("%w: SweepInterval %v, want > 0", ErrBadConfig, c.SweepInterval)
	}
	return nil
}
