package control

import (
	"io"
	"net"
	"sync"
)

type closeWriter interface{ CloseWrite() error }

// splice copies both ways between a and b. When one side's reads end, it
// half-closes the other side's writes, so each direction finishes on its
// own; when both are done it closes both. It returns the bytes copied a→b
// and b→a.
func splice(a, b net.Conn) (ab, ba int64) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ab = copyHalf(b, a)
	}()
	go func() {
		defer wg.Done()
		ba = copyHalf(a, b)
	}()
	wg.Wait()
	a.Close()
	b.Close()
	return ab, ba
}

// copyHalf copies src to dst, then ends dst's write direction. If dst cannot
// half-close, or the copy failed, both are closed so the other direction
// ends too instead of hanging.
func copyHalf(dst, src net.Conn) int64 {
	n, err := io.Copy(dst, src)
	cw, ok := dst.(closeWriter)
	if err != nil || !ok || cw.CloseWrite() != nil {
		dst.Close()
		src.Close()
	}
	return n
}

// spliceFramed is splice for a dial through the API: client→stream raw,
// stream→client framed (see frames.go), so the client learns how the
// stream ended.
func spliceFramed(client, stream net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(stream, client) })
	wg.Go(func() {
		if writeFramed(client, stream) != nil {
			client.Close()
			stream.Close()
		}
	})
	wg.Wait()
	client.Close()
	stream.Close()
}
