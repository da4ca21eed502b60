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

// TestPart: a part may pass MaxString (it is a section of a format, not a
// string), views the input, and a length past the input fails the reader.
func TestPart(t *testing.T) {
	big := make([]byte, 3<<20)
	big[len(big)-1] = 7
	b := append(AppendUvarint(nil, uint64(len(big))), big...)
	b = append(b, 42)
	r := NewReader(b)
	p := r.Part()
	if r.Err() != nil || len(p) != len(big) || p[len(p)-1] != 7 || &p[0] != &b[len(b)-len(big)-1] {
		t.Fatalf("part of %d bytes: %d bytes, err %v", len(big), len(p), r.Err())
	}
	if r.Byte() != 42 || r.Len() != 0 {
		t.Fatal("the byte after the part")
	}
	r = NewReader(append(AppendUvarint(nil, 10), 1, 2, 3))
	if p := r.Part(); p != nil || r.Err() == nil {
		t.Fatalf("a 10-byte part in 3 bytes: %v, err %v", p, r.Err())
	}
}
