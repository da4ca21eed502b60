package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/bench/world"
	"github.com/omnipick/omnipick/engine"
)

// loadDemo writes the demo world's records through w, in batches, and
// returns how many were applied. Any rejected record is an error: the demo
// files are generated and checked, so a rejection means they drifted.
func loadDemo(dir string, w api.Writer) (int, error) {
	var dec api.Decoder
	var recs []engine.Record
	var rejects []api.Reject
	var errs []error
	total := 0
	for _, f := range world.Files() {
		body, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			return total, err
		}
		for len(body) > 0 {
			// Up to 1,000 lines a batch.
			end, lines := 0, 0
			for end < len(body) && lines < 1000 {
				if i := bytes.IndexByte(body[end:], '\n'); i >= 0 {
					end += i + 1
				} else {
					end = len(body)
				}
				lines++
			}
			recs, rejects, err = dec.Decode(f.Op, body[:end], true, time.Now().UnixMilli(), recs[:0], rejects[:0])
			if err != nil {
				return total, fmt.Errorf("%s: %w", f.Name, err)
			}
			if len(rejects) > 0 {
				return total, fmt.Errorf("%s: record %d: %s: %s", f.Name, rejects[0].Index, rejects[0].Field, rejects[0].Reason)
			}
			errs = append(errs[:0], make([]error, len(recs))...)
			if err := w.Write(recs, errs); err != nil {
				return total, err
			}
			for i, err := range errs {
				if err != nil {
					return total, fmt.Errorf("%s: record %d rejected: %w", f.Name, i, err)
				}
			}
			total += len(recs)
			body = body[end:]
		}
	}
	return total, nil
}
