package mycelium

import "testing"

// TestEvictionVictim: past maxDrainingPerPeer losers, the one closed is
// the oldest without streams, else the oldest without a path layer, else
// the oldest: a circuit's connection that carries streams through its
// path layer outlives the empty losers each punch leaves behind.
func TestEvictionVictim(t *testing.T) {
	sess := &pathSession{}
	layered := &peerConn{streams: 1, session: sess}
	busy := &peerConn{streams: 2}
	empty := &peerConn{}
	busy2 := &peerConn{streams: 1}
	for _, c := range []struct {
		name     string
		draining []*peerConn
		want     *peerConn
	}{
		{"an empty loser goes first", []*peerConn{layered, busy, empty, busy2}, empty},
		{"then one without a path layer", []*peerConn{layered, busy, busy2}, busy},
		{"else the oldest", []*peerConn{layered, {streams: 1, session: sess}}, layered},
	} {
		if got := evictionVictim(c.draining); got != c.want {
			t.Errorf("%s: evicted %p, want %p", c.name, got, c.want)
		}
	}
}
