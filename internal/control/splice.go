package control

import (
	"net"
	"sync"

	"github.com/mycelium-net/mycelium/internal/pipe"
)

type closeWriter interface{ CloseWrite() error }

// spliceFramed is splice for a dial through the API: client→stream raw,
// stream→client framed (see frames.go), so the client learns how the
// stream ended.
func spliceFramed(client, stream net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { pipe.CopyHalf(stream, client) })
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
