package binfmt

import (
	"encoding/binary"
	"testing"
)

// refUvarint is the Reader's Uvarint as it was first written: through
// binary.Uvarint, rejecting overlong encodings by re-encoding.
func refUvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, nil, ErrShort
	case n < 0:
		return 0, nil, ErrVarint
	case n != len(binary.AppendUvarint(nil, v)):
		return 0, nil, ErrVarint
	}
	return v, b[n:], nil
}

func checkUvarint(t *testing.T, in []byte) {
	t.Helper()
	r := NewReader(in)
	got := r.Uvarint()
	want, rest, err := refUvarint(in)
	if got != want || r.Err() != err || (err == nil && r.Len() != len(rest)) {
		t.Fatalf("Uvarint(%x) = %d, err %v, %d left; want %d, err %v, %d left", in, got, r.Err(), r.Len(), want, err, len(rest))
	}
}

func TestUvarint(t *testing.T) {
	for _, in := range [][]byte{
		nil, {0}, {1}, {0x7f}, {0x80}, {0x80, 0}, {0x80, 1}, {0xff, 0x7f, 9},
		binary.AppendUvarint(nil, 1<<35), binary.AppendUvarint(nil, 1<<63), binary.AppendUvarint(nil, ^uint64(0)),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2},          // 65 bits
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // 11 bytes
		{0x81, 0x80, 0x80, 0}, // overlong
		{0xff, 0xff},          // short
	} {
		checkUvarint(t, in)
	}
}

func FuzzUvarint(f *testing.F) {
	f.Add([]byte{0x80, 1})
	f.Add(binary.AppendUvarint(nil, ^uint64(0)))
	f.Fuzz(func(t *testing.T, in []byte) { checkUvarint(t, in) })
}
