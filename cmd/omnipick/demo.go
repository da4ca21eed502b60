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

// demoBatchLines is how many lines of a demo file loadDemo writes at once.
const demoBatchLines = 1000

// loadDemo writes the demo world's records through w, in batches, and
// returns how many were applied. Any rejected record is an error naming
// its file and line: the demo files are generated and checked, so a
// rejection means they drifted.
func loadDemo(dir string, w api.Writer) (int, error) {
	l := demoLoader{w: w}
	for _, f := range world.Files() {
		body, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			return l.total, err
		}
		if err := l.file(f, body); err != nil {
			return l.total, err
		}
	}
	return l.total, nil
}

// demoLoader is the state of one loadDemo call: buffers reused across
// batches and the count of records applied.
type demoLoader struct {
	w       api.Writer
	dec     api.Decoder
	recs    []engine.Record
	rejects []api.Reject
	errs    []error
	total   int
}

// file writes the records of one demo file, demoBatchLines lines at a time.
func (l *demoLoader) file(f world.File, body []byte) error {
	for line := 1; len(body) > 0; { // line: the number of the batch's first line in the file
		end, n := batchEnd(body, demoBatchLines)
		if idx, err := l.batch(f, body[:end]); err != nil {
			return fmt.Errorf("%s line %d: %w", f.Name, line+objectLine(body[:end], idx)-1, err)
		}
		body, line = body[end:], line+n
	}
	return nil
}

// batch decodes and writes the objects of one batch. On failure it
// returns the position of the object at fault among the batch's objects
// (non-blank lines).
func (l *demoLoader) batch(f world.File, b []byte) (int, error) {
	var err error
	l.recs, l.rejects, err = l.dec.Decode(f.Op, b, true, time.Now().UnixMilli(), l.recs[:0], l.rejects[:0])
	if err != nil {
		return 0, err
	}
	if len(l.rejects) > 0 {
		r := l.rejects[0]
		return r.Index, fmt.Errorf("%s: %s", r.Field, r.Reason)
	}
	l.errs = l.errs[:0]
	for range l.recs {
		l.errs = append(l.errs, nil)
	}
	if err := l.w.Write(l.recs, l.errs); err != nil {
		return 0, err
	}
	for i, err := range l.errs {
		if err != nil { // no decode rejects: record i is object i
			return i, fmt.Errorf("rejected: %w", err)
		}
	}
	l.total += len(l.recs)
	return 0, nil
}

// batchEnd returns the end of the first max lines of body (each with its
// newline) and how many lines that is.
func batchEnd(body []byte, max int) (end, lines int) {
	for end < len(body) && lines < max {
		if i := bytes.IndexByte(body[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(body)
		}
		lines++
	}
	return end, lines
}

// objectLine returns the 1-based line of b that holds object idx, counting
// objects as api.Decoder does for NDJSON: one a line, blank lines skipped.
func objectLine(b []byte, idx int) int {
	line := 1
	for len(b) > 0 {
		cur, rest, _ := bytes.Cut(b, []byte{'\n'})
		if len(bytes.TrimLeft(cur, " \t\r\n")) > 0 {
			if idx == 0 {
				return line
			}
			idx--
		}
		b = rest
		line++
	}
	return line
}
