package world

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/omnipick/omnipick/engine"
)

// File is one NDJSON file of a world: its name and the kind of record each
// line holds.
type File struct {
	Name string
	Op   engine.Op
}

// Files returns the world's NDJSON files, one per record kind, in the order
// they must be applied (WriteNDJSON adds ".zst" when compressing). Readers
// of internal/demo use it too, so the order is written down once.
func Files() []File {
	return []File{
		{"locations.ndjson", engine.OpLocation},
		{"products.ndjson", engine.OpProduct},
		{"inventory.ndjson", engine.OpInventory},
		{"events.ndjson", engine.OpEvent},
	}
}

// WriteNDJSON generates the world described by cfg into dir as
// locations.ndjson, products.ndjson, inventory.ndjson and events.ndjson,
// one API-shaped JSON object a line (see AppendRecordJSON), ready to POST
// to the matching /v1 endpoint. With compress set the files are
// zstd-compressed and named *.ndjson.zst. dir is created if needed;
// existing files are overwritten.
func WriteNDJSON(dir string, cfg Config, compress bool) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("world: cannot create %q: %w", dir, err)
	}
	files := Files()
	outs := make([]*ndjsonWriter, len(files))
	defer func() {
		for _, o := range outs {
			if o != nil {
				err = errors.Join(err, o.close())
			}
		}
	}()
	for i, f := range files {
		name := f.Name
		if compress {
			name += ".zst"
		}
		if outs[i], err = createNDJSON(filepath.Join(dir, name), compress); err != nil {
			return err
		}
	}
	var line []byte
	return Generate(cfg, func(r *engine.Record) error {
		for i, f := range files {
			if f.Op == r.Op {
				line = append(AppendRecordJSON(line[:0], r), '\n')
				return outs[i].write(line)
			}
		}
		return fmt.Errorf("world: no NDJSON file for %v records", r.Op)
	})
}

// ndjsonWriter is a buffered, optionally compressed file.
type ndjsonWriter struct {
	path string
	f    *os.File
	zw   *zstd.Encoder
	bw   *bufio.Writer
}

func createNDJSON(path string, compress bool) (*ndjsonWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("world: cannot create %q: %w", path, err)
	}
	w := &ndjsonWriter{path: path, f: f}
	var dst io.Writer = f
	if compress {
		if w.zw, err = zstd.NewWriter(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("world: cannot start zstd for %q: %w", path, err)
		}
		dst = w.zw
	}
	w.bw = bufio.NewWriterSize(dst, 256<<10)
	return w, nil
}

func (w *ndjsonWriter) write(line []byte) error {
	if _, err := w.bw.Write(line); err != nil {
		return fmt.Errorf("world: cannot write %q: %w", w.path, err)
	}
	return nil
}

// close flushes and closes the file, reporting the first error.
func (w *ndjsonWriter) close() error {
	err := w.bw.Flush()
	if w.zw != nil {
		err = errors.Join(err, w.zw.Close())
	}
	err = errors.Join(err, w.f.Close())
	if err != nil {
		return fmt.Errorf("world: cannot finish %q: %w", w.path, err)
	}
	return nil
}
