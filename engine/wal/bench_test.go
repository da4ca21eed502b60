package wal

import (
	"path/filepath"
	"testing"
)

// benchBatch returns a batch of n records with size-byte payloads.
func benchBatch(n, size int) *Batch {
	var b Batch
	for i := range n {
		b.Add(byte(i), testPayload(uint64(i), size))
	}
	return &b
}

// BenchmarkAppend measures one goroutine appending on the real file system
// with SyncInterval: per op, one batch of 1,000 records of 100 bytes and a
// wait for it to be written, or one single record.
func BenchmarkAppend(b *testing.B) {
	b.Run("batch=1000x100B", func(b *testing.B) {
		l := benchOpen(b, SyncInterval)
		batch := benchBatch(1000, 100)
		b.SetBytes(int64(batch.Size()))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			_, last, err := l.AppendBatch(batch)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.WaitDurable(last); err != nil {
				b.Fatal(err)
			}
			if i%256 == 255 {
				l.RemoveBefore(last) // bound disk use
			}
		}
		benchReport(b, l, 1000)
	})
	b.Run("single=100B", func(b *testing.B) {
		l := benchOpen(b, SyncInterval)
		p := testPayload(1, 100)
		b.SetBytes(RecordHeaderSize + 100)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			seq, err := l.Append(1, p)
			if err != nil {
				b.Fatal(err)
			}
			if i%1000 == 999 {
				if err := l.WaitDurable(seq); err != nil {
					b.Fatal(err)
				}
			}
		}
		benchReport(b, l, 1)
	})
}

// BenchmarkAppendParallel measures concurrent appenders with SyncAlways on
// the real file system: each op appends and waits until durable. Group
// commit shows as fsyncs/op well below 1.
func BenchmarkAppendParallel(b *testing.B) {
	for _, bc := range []struct {
		name    string
		records int
	}{
		{"batch=1000x100B", 1000},
		{"single=100B", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := benchOpen(b, SyncAlways)
			b.SetBytes(int64(bc.records * (RecordHeaderSize + 100)))
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				batch := benchBatch(bc.records, 100)
				for pb.Next() {
					_, last, err := l.AppendBatch(batch)
					if err != nil {
						b.Fatal(err)
					}
					if err := l.WaitDurable(last); err != nil {
						b.Fatal(err)
					}
				}
			})
			benchReport(b, l, bc.records)
		})
	}
}

func benchOpen(b *testing.B, mode SyncMode) *Log {
	b.Helper()
	l, err := Open(OS(), filepath.Join(b.TempDir(), "wal"), Options{Sync: mode})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	})
	return l
}

func benchReport(b *testing.B, l *Log, perOp int) {
	b.StopTimer()
	s := l.Stats()
	records := float64(b.N) * float64(perOp)
	b.ReportMetric(records/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(s.Fsyncs)/float64(b.N), "fsyncs/op")
	b.ReportMetric(float64(s.Fsyncs)/records, "fsyncs/record")
	if s.Fsyncs > 0 {
		b.ReportMetric(float64(s.FsyncTime.Microseconds())/float64(s.Fsyncs), "µs/fsync")
	}
}
