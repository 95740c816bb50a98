package circuit

import "errors"

// Errors returned by this package. Every error it returns wraps one of
// them; test with errors.Is.
var (
	// ErrBadPath: NewOnion was given no hops, more than MaxHops, a nil or
	// non-X25519 onion key, or an onion key that gives no shared secret.
	ErrBadPath = errors.New("circuit: bad path")
	// ErrBadOnion: a setup onion has the wrong size, its MAC does not
	// verify under our key, or its decrypted block is malformed.
	ErrBadOnion = errors.New("circuit: bad onion")
	// ErrExpired: a setup onion was created more than SetupMaxAge before
	// or after now.
	ErrExpired = errors.New("circuit: onion expired")
	// ErrReplay: a setup onion was already peeled by this ReplayCache.
	ErrReplay = errors.New("circuit: onion replayed")
	// ErrReplayCacheFull: the ReplayCache holds its maximum of unexpired
	// tags, so it refuses new onions rather than forget a tag early.
	ErrReplayCacheFull = errors.New("circuit: replay cache full")
	// ErrBadPacket: a data packet has the wrong size, a header that does
	// not decode to a counter, or fails authentication.
	ErrBadPacket = errors.New("circuit: bad packet")
	// ErrReplayedPacket: a data packet's counter was already accepted or
	// is older than the ReplayWindow.
	ErrReplayedPacket = errors.New("circuit: replayed packet")
	// ErrPayloadTooLarge: Seal was given more than MaxPayload bytes.
	ErrPayloadTooLarge = errors.New("circuit: payload too large")
	// ErrExhausted: an end has used every packet counter; build a new
	// circuit.
	ErrExhausted = errors.New("circuit: packet counters exhausted")
	// ErrBadArgument: a nil or wrong-curve private key, a nil ReplayCache,
	// or a nil or zero-value receiver.
	ErrBadArgument = errors.New("circuit: bad argument")
	// ErrCrypto: the random source or a primitive failed (for example
	// ChaCha20-Poly1305 in FIPS 140-only mode).
	ErrCrypto = errors.New("circuit: crypto failure")
)
