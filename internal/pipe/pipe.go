// Package pipe joins two connections: the control API's expose, forward
// and dial, the demo's relay and the tests' relays all carry bytes both
// ways with half-close this way.
package pipe

import (
	"io"
	"net"
	"sync"
)

type closeWriter interface{ CloseWrite() error }

// Splice copies both ways between a and b. When one side's reads end, it
// half-closes the other side's writes, so each direction finishes on its
// own; when both are done it closes both. It returns the bytes copied a→b
// and b→a.
func Splice(a, b net.Conn) (ab, ba int64) {
	var wg sync.WaitGroup
	wg.Go(func() { ab = CopyHalf(b, a) })
	wg.Go(func() { ba = CopyHalf(a, b) })
	wg.Wait()
	a.Close()
	b.Close()
	return ab, ba
}

// CopyHalf copies src to dst, then ends dst's write direction. If dst
// cannot half-close, or the copy failed, both are closed so the other
// direction ends too instead of hanging.
func CopyHalf(dst, src net.Conn) int64 {
	n, err := io.Copy(dst, src)
	cw, ok := dst.(closeWriter)
	if err != nil || !ok || cw.CloseWrite() != nil {
		dst.Close()
		src.Close()
	}
	return n
}
