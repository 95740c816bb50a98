module github.com/mycelium-net/mycelium

go 1.26.8

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7
	github.com/libp2p/go-reuseport v0.4.0
	github.com/pion/stun/v3 v3.1.7
	github.com/quic-go/quic-go v0.65.0
	golang.org/x/crypto v0.58.0
	golang.org/x/net v0.60.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/pion/dtls/v3 v3.1.5 // indirect
	github.com/pion/logging v0.2.4 // indirect
	github.com/pion/transport/v4 v4.1.0 // indirect
	github.com/wlynxg/anet v0.0.5 // indirect
)
