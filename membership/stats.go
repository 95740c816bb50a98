package membership

// Stats are plain counters since New. The driver exports them.
type Stats struct {
	In   MessageCounts // messages handled, by type (after decoding)
	Out  MessageCounts // messages emitted as Sends, by type
	Drop DropCounts    // inputs dropped, by reason

	Joins           uint64 // Join calls
	JoinRetries     uint64 // JOINs sent again after JoinTimeout
	Rejoins         uint64 // JOINs to the last contact after the node found itself alone
	Escalations     uint64 // NEIGHBORs made high priority after starving (Config.StarveTicks)
	ContactProbes   uint64 // SHUFFLEs to the contact from a node whose passive view would not fill
	IsolationJoins  uint64 // high-priority NEIGHBORs to a stranger the contact named in its probe reply
	JoinsAccepted   uint64 // JOINs this node accepted as a contact
	ForwardJoinEnds uint64 // FORWARD_JOIN walks that ended here

	NeighborRequests uint64 // NEIGHBOR requests started (repair, refill, walk ends)
	NeighborAccepted uint64 // our requests (and JOINs) accepted
	NeighborRejected uint64 // our requests rejected
	NeighborTimeouts uint64 // our requests unanswered after NeighborTimeout
	NeighborFailures uint64 // our requests whose link failed or could not open
	RequestsAccepted uint64 // NEIGHBOR requests this node accepted
	RequestsRejected uint64 // NEIGHBOR requests this node rejected

	NeighborUps   uint64 // peers that entered the active view
	NeighborDowns uint64 // peers that left it, for any reason
	Evictions     uint64 // active peers dropped to make room (DISCONNECT sent)
	Disconnected  uint64 // active peers that dropped us (DISCONNECT received)
	Failures      uint64 // active peers lost to a link failure

	Shuffles         uint64 // SHUFFLEs started
	ShufflesForward  uint64 // SHUFFLEs passed on along their walk
	ShufflesAnswered uint64 // SHUFFLEs that ended here (SHUFFLE_REPLY sent)
	ShuffleReplies   uint64 // SHUFFLE_REPLYs integrated

	Connects      uint64 // Connect outputs
	ConnectFailed uint64 // HandleConnectFailed for a link we wanted
	UnwantedLinks uint64 // links closed on HandleConnected because nothing needed them any more
}

// MessageCounts count messages by type.
type MessageCounts struct {
	Join, ForwardJoin, Neighbor, NeighborAccept, NeighborReject, Disconnect, Shuffle, ShuffleReply uint64
}

func (c *MessageCounts) add(t MsgType) {
	switch t {
	case MsgJoin:
		c.Join++
	case MsgForwardJoin:
		c.ForwardJoin++
	case MsgNeighbor:
		c.Neighbor++
	case MsgNeighborAccept:
		c.NeighborAccept++
	case MsgNeighborReject:
		c.NeighborReject++
	case MsgDisconnect:
		c.Disconnect++
	case MsgShuffle:
		c.Shuffle++
	case MsgShuffleReply:
		c.ShuffleReply++
	}
}

// Total is the sum over all types.
func (c MessageCounts) Total() uint64 {
	return c.Join + c.ForwardJoin + c.Neighbor + c.NeighborAccept + c.NeighborReject + c.Disconnect + c.Shuffle + c.ShuffleReply
}

// DropCounts count dropped inputs by reason. A misbehaving or confused
// peer is dropped and counted, never answered with an error.
type DropCounts struct {
	Oversized  uint64 // message longer than MaxMessageSize
	Malformed  uint64 // message that does not parse
	BadSender  uint64 // message from ourselves or from the zero ID
	Spoofed    uint64 // JOIN or NEIGHBOR naming someone other than its sender
	Self       uint64 // walk about ourselves (our own JOIN or SHUFFLE came back)
	Unexpected uint64 // reply to no request of ours, or DISCONNECT from a non-neighbour
	Limit      uint64 // dropped to stay within a resource limit
	BadPeer    uint64 // Join contact that cannot be encoded (driver error)
	Encode     uint64 // message that would not encode (a bug; never expected)
}
