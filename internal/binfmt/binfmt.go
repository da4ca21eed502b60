// Package binfmt holds the little binary encoding shared by Omnipick's log
// records and snapshots: unsigned varints, length-prefixed strings and
// fixed 8-byte floats, appended to a caller's buffer and read back by a
// bounds-checked Reader that never panics on hostile bytes.
//
// It owns no state and takes no locks. It imports only the standard
// library; engine (record codec, snapshot, profile encoding) and index
// (snapshot) import it, which is why it lives in internal/ and not under
// either of them.
package binfmt

import (
	"encoding/binary"
	"errors"
	"math"
)

// ErrShort and ErrTooLong report malformed input.
var (
	ErrShort   = errors.New("binfmt: input ends early")
	ErrTooLong = errors.New("binfmt: length out of bounds")
	ErrVarint  = errors.New("binfmt: malformed varint")
)

// AppendUvarint appends v as an unsigned varint.
func AppendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

// AppendVarint appends v as a zig-zag varint.
func AppendVarint(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// AppendString appends a length-prefixed string.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendFloat appends f as 8 little-endian bytes.
func AppendFloat(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// AppendFloat32 appends f as 4 little-endian bytes.
func AppendFloat32(dst []byte, f float32) []byte {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
}

// Reader decodes what the Append functions wrote. The first error sticks:
// later reads return zero values, so a decoder checks Err once at the end.
type Reader struct {
	b   []byte
	err error
	// MaxString bounds string lengths; 0 means 1 MiB.
	MaxString int
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b afresh.
func (r *Reader) Reset(b []byte) { r.b, r.err = b, nil }

// Err returns the first error met, if any.
func (r *Reader) Err() error { return r.err }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

// Rest returns the unread bytes, shared with the Reader's input: a caller
// that notes Rest before reading a value and Len after can slice out the
// value's encoding.
func (r *Reader) Rest() []byte { return r.b }

func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

// Uvarint reads an unsigned varint. It is the decoders' innermost loop
// (every profile read on the picks path is a few hundred of them), so it
// decodes inline rather than through binary.Uvarint, with the same
// outcomes: input that ends early is ErrShort; more than 64 bits, or an
// overlong encoding (a final 0x00 byte: one value, one encoding), is
// ErrVarint.
func (r *Reader) Uvarint() uint64 {
	b := r.b
	if len(b) > 0 && b[0] < 0x80 {
		r.b = b[1:]
		return uint64(b[0])
	}
	var v uint64
	for i := 0; i < len(b) && i < binary.MaxVarintLen64; i++ {
		c := b[i]
		if c < 0x80 {
			if c == 0 || (i == binary.MaxVarintLen64-1 && c > 1) {
				r.fail(ErrVarint)
				return 0
			}
			r.b = b[i+1:]
			return v | uint64(c)<<(7*i)
		}
		v |= uint64(c&0x7f) << (7 * i)
	}
	if len(b) <= binary.MaxVarintLen64 { // binary.Uvarint's rule, too
		r.fail(ErrShort)
	} else {
		r.fail(ErrVarint)
	}
	return 0
}

// Varint reads a zig-zag varint.
func (r *Reader) Varint() int64 {
	u := r.Uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// Count reads a count that must be at most max, for sizing slices; a count
// larger than the bytes left could hold is rejected before anything is
// allocated for it.
func (r *Reader) Count(max int) int {
	v := r.Uvarint()
	if v > uint64(max) || v > uint64(len(r.b)) {
		r.fail(ErrTooLong)
		return 0
	}
	return int(v)
}

// Uint32 reads an unsigned varint that must fit in 32 bits.
func (r *Reader) Uint32() uint32 {
	v := r.Uvarint()
	if v > math.MaxUint32 {
		r.fail(ErrTooLong)
		return 0
	}
	return uint32(v)
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) < 1 {
		r.fail(ErrShort)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	switch r.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(ErrVarint)
	return false
}

// Bytes reads a length-prefixed byte string, without copying: the result
// views the input.
func (r *Reader) Bytes() []byte {
	max := r.MaxString
	if max == 0 {
		max = 1 << 20
	}
	n := r.Uvarint()
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail(ErrTooLong)
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

// String reads a length-prefixed string (a copy).
func (r *Reader) String() string { return string(r.Bytes()) }

// Float reads 8 little-endian bytes as a float64.
func (r *Reader) Float() float64 {
	if len(r.b) < 8 {
		r.fail(ErrShort)
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return f
}

// Float32 reads 4 little-endian bytes as a float32.
func (r *Reader) Float32() float32 {
	if len(r.b) < 4 {
		r.fail(ErrShort)
		return 0
	}
	f := math.Float32frombits(binary.LittleEndian.Uint32(r.b))
	r.b = r.b[4:]
	return f
}
