package circuit

import (
	"encoding/binary"
	"fmt"
)

// Block types: what a hop does with the circuit.
const (
	typeRelay    = 1 // forward the rest of the onion to Next
	typeTerminal = 2 // the circuit ends here
)

// Layout of a decrypted routing block:
// | type (1) | next hop ID (32) | E_next (32) | MAC_next (16) | created (8) | zero |.
const (
	offType    = 0
	offNext    = offType + 1
	offEph     = offNext + len(NodeID{})
	offMAC     = offEph + keySize
	offCreated = offMAC + macSize
	blockUsed  = offCreated + 8
)

// block is one hop's routing instructions.
type block struct {
	typ     byte
	next    NodeID        // zero for the terminal
	eph     [keySize]byte // the next hop's ephemeral public key
	mac     [macSize]byte // the next hop's MAC
	created uint64        // Unix seconds at the initiator
}

// put writes b into dst (BlockSize bytes), padding with zeros.
func (b *block) put(dst []byte) {
	clear(dst[:BlockSize])
	dst[offType] = b.typ
	copy(dst[offNext:], b.next[:])
	copy(dst[offEph:], b.eph[:])
	copy(dst[offMAC:], b.mac[:])
	binary.BigEndian.PutUint64(dst[offCreated:], b.created)
}

// parseBlock decodes a decrypted routing block. It refuses an unknown
// type, a terminal block with routing fields, and non-zero padding.
func parseBlock(src []byte) (block, error) {
	var b block
	if len(src) < BlockSize {
		return b, fmt.Errorf("%w: short block", ErrBadOnion)
	}
	b.typ = src[offType]
	copy(b.next[:], src[offNext:])
	copy(b.eph[:], src[offEph:])
	copy(b.mac[:], src[offMAC:])
	b.created = binary.BigEndian.Uint64(src[offCreated:])
	for _, x := range src[blockUsed:BlockSize] {
		if x != 0 {
			return b, fmt.Errorf("%w: non-zero block padding", ErrBadOnion)
		}
	}
	switch b.typ {
	case typeRelay:
	case typeTerminal:
		if b.next != (NodeID{}) || b.eph != [keySize]byte{} || b.mac != [macSize]byte{} {
			return b, fmt.Errorf("%w: terminal block with routing fields", ErrBadOnion)
		}
	default:
		return b, fmt.Errorf("%w: unknown block type %d", ErrBadOnion, b.typ)
	}
	return b, nil
}
