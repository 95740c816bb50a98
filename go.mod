module github.com/mycelium-net/mycelium

go 1.26.8

require (
	github.com/libp2p/go-reuseport v0.4.0
	github.com/quic-go/quic-go v0.65.0
	golang.org/x/net v0.60.0
	golang.org/x/sys v0.49.0
)

require golang.org/x/crypto v0.58.0 // indirect
