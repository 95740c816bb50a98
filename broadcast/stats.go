package broadcast

// Stats are a Machine's plain counters, for the driver to export. Counters
// only grow; the gauges at the end are current values.
type Stats struct {
	// Broadcasts counts messages this node originated.
	Broadcasts uint64
	// Delivered counts Deliver outputs, the origin's own included.
	Delivered uint64
	// Duplicates counts GOSSIPs for messages already received.
	Duplicates uint64

	// Messages in and out by type. GossipOut counts every payload send,
	// the paper's m summed over messages: RMR needs it.
	GossipIn, GossipOut uint64
	IHaveIn, IHaveOut   uint64
	GraftIn, GraftOut   uint64
	PruneIn, PruneOut   uint64

	// Announcements (message IDs) carried in IHAVEs.
	AnnouncementsIn, AnnouncementsOut uint64

	// Payload bytes in GOSSIPs received and sent.
	PayloadBytesIn, PayloadBytesOut uint64

	// GraftsForMissing counts GRAFTs sent for a message announced but not
	// received in time (timeout1 or timeout2 expired).
	GraftsForMissing uint64
	// Optimizations counts tree optimisations (§3.8): a GRAFT to a closer
	// announcer with a PRUNE to the eager parent.
	Optimizations uint64
	// MissingGaveUp counts announced messages never received: every
	// announcer was grafted without an answer.
	MissingGaveUp uint64
	// CatchUps counts the catch-up IHAVEs sent to new neighbours
	// (Config.CatchUpWindow).
	CatchUps uint64

	// Drops counts what was thrown away, by reason.
	Drops Drops

	// Gauges.
	CacheEntries int // message IDs remembered
	CacheBytes   int // payload bytes kept for GRAFT answers
	Missing      int // announced messages awaited
	Eager, Lazy  int // peers in each set
}

// Drops counts discarded input by reason. A misbehaving or unlucky peer
// shows up here, never as an error.
type Drops struct {
	// Malformed: the message did not parse, or came from this node itself.
	Malformed uint64
	// Oversized: the message exceeded MaxMessageSize, or its payload
	// exceeded Config.MaxPayload.
	Oversized uint64
	// NotNeighbor: an IHAVE, GRAFT or PRUNE from a peer that is not a
	// neighbour (no HandleNeighborUp, or already down). GOSSIPs from such
	// peers are still delivered and forwarded.
	NotNeighbor uint64
	// GraftUnknown: a GRAFT for a message no longer (or never) cached.
	GraftUnknown uint64
	// MissingFull: IHAVE announcements ignored because MaxMissing unknown
	// messages were already awaited, or the message had enough announcers.
	MissingFull uint64
}

// Stats returns the counters and current gauges.
func (m *Machine) Stats() Stats {
	s := m.stats
	s.CacheEntries = m.cache.len()
	s.CacheBytes = m.cache.bytes
	s.Missing = len(m.missing)
	s.Eager = len(m.eager)
	s.Lazy = len(m.lazy)
	return s
}
