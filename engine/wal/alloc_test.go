//go:build !race

package wal

import "testing"

// TestAppendAllocs checks that appending allocates nothing once the
// buffers have grown: records are copied into the log's reused buffers.
func TestAppendAllocs(t *testing.T) {
	l, err := Open(NewMemFS(), "/wal", Options{Sync: SyncInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := testPayload(1, 100)
	batch := benchBatch(1000, 100)
	for range 100 { // grow the buffers
		_, last, err := l.AppendBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		l.WaitDurable(last)
	}
	tests := []struct {
		name string
		f    func()
	}{
		{"Append", func() {
			if _, err := l.Append(1, p); err != nil {
				t.Fatal(err)
			}
		}},
		{"AppendBatch", func() {
			if _, _, err := l.AppendBatch(batch); err != nil {
				t.Fatal(err)
			}
		}},
		{"Batch.Add", func() {
			batch.Reset()
			for range 1000 {
				batch.Add(1, p)
			}
		}},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n > 0.05 {
			t.Errorf("%s: %.2f allocs per call, want 0", tt.name, n)
		}
	}
}
