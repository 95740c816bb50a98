package control

import (
	"errors"
	"io"
	"net"
	"sync"
)

type closeWriter interface{ CloseWrite() error }

// spliceFramed is splice for a dial through the API: client→stream raw,
// stream→client framed (see frames.go), so the client learns how the
// stream ended.
//
// A failed write to the stream (the peer reset it) leaves the client
// connection alone: the stream's read side then fails too, and
// writeFramed tells the client why in an error frame. Closing the client
// there instead raced that frame, and the client saw a cut stream rather
// than the peer's reset.
func spliceFramed(client, stream net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyToStream(stream, client) })
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

// copyToStream copies what the client sends to the stream. When the client
// has sent everything it closes the stream's write side; when the client
// goes away it closes the stream, so that the framed copy ends too.
func copyToStream(stream, client net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := client.Read(buf)
		if n > 0 {
			if _, err := stream.Write(buf[:n]); err != nil {
				return // the stream failed: writeFramed reports how
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			if cw, ok := stream.(closeWriter); ok && cw.CloseWrite() == nil {
				return
			}
			stream.Close()
			return
		default:
			stream.Close()
			return
		}
	}
}
