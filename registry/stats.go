package registry

// Stats are a Machine's plain counters since New, for the driver to
// export; Held and Tombstones are gauges. Each record offered (broadcast
// or in RECORDS) lands in exactly one of Accepted, Duplicates, Stale,
// Forged, Oversized, Malformed, Expired, FarFuture, RateLimited,
// SelfRecords, or Evicted (a newcomer refused for room); Conflicts counts
// again some of those that landed in Accepted or Stale.
type Stats struct {
	// Records offered, by where they came from.
	BroadcastsIn uint64 // payloads given to HandleBroadcast
	RecordsIn    uint64 // records in RECORDS messages

	// Outcomes of records offered (broadcast or anti-entropy).
	Accepted   uint64 // stored: new node, higher Seq, or a winning conflict
	Duplicates uint64 // the same bytes as the record held
	Conflicts  uint64 // same Seq as the record held, other bytes (also counted as Accepted or Stale)
	Stale      uint64 // lower Seq than the record held, or a losing conflict
	Forged     uint64 // signature did not verify
	Oversized  uint64 // record over MaxRecordSize, or a list over its bound
	Malformed  uint64 // record that did not decode
	Expired    uint64 // record no longer live on arrival
	FarFuture  uint64 // record issued more than MaxClockSkew ahead
	// RateLimited counts records in RECORDS dropped unread by the
	// sender's token bucket (Config.MaxRecordsPerPeerPerSecond).
	RateLimited uint64
	// PushLimited counts records a peer's DIGEST showed it lacked that we
	// did not push, its push budget (the same token bucket rate as
	// MaxRecordsPerPeerPerSecond) being spent. Refreshes and later digests
	// bring them.
	PushLimited uint64
	// Evicted counts records dropped to stay within MaxRecords: held ones
	// evicted and newcomers refused (Config.MaxRecords).
	Evicted uint64
	// Expirations counts records removed by the sweep after they expired.
	Expirations uint64

	// SelfRecords counts records about our own ID not signed by this
	// Machine (an earlier run of the node) with a Seq at least ours: our
	// Seq is bumped above it and our record published again.
	SelfRecords uint64

	// Our own record.
	Published uint64 // Publish outputs (SetLocal, refresh, Leave, self bumps)
	Refreshes uint64 // refresh timer republications

	// Anti-entropy.
	DigestsIn, DigestsOut uint64 // DIGEST messages
	RecordsMsgsOut        uint64 // RECORDS messages sent
	RecordsPushed         uint64 // records carried in them
	BadMessages           uint64 // anti-entropy messages that did not parse, or from a bad sender

	// Gauges.
	Held       int // records held (Len)
	Tombstones int // of which tombstones
}
