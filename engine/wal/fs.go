package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// File is an open file of an FS. A file opened for writing only appends:
// every Write goes to the end of the file.
//
// A File is not safe for concurrent use, except that ReadAt may be called
// concurrently with itself.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's data durable: after it returns nil, a power loss
	// keeps every byte written before the call. It does not make the file's
	// directory entry durable; see FS.SyncDir.
	Sync() error
}

// FS is the small file system interface the log (and snapshots) use, so that
// tests can run against MemFS and simulate power loss with
// (*MemFS).CrashClone.
//
// Names are paths as the implementation understands them: OS paths for OS(),
// slash-separated paths for MemFS (where "/a/b" and "a/b" are the same file).
// Implementations must be safe for concurrent use.
//
// Durability contract, which the log relies on and MemFS models exactly:
//   - File data is durable only after File.Sync.
//   - A created, renamed or removed directory entry is durable only after
//     SyncDir of the directory holding it (both directories for a rename).
//   - MkdirAll is the exception: every directory it creates is durable when
//     it returns.
type FS interface {
	// Create creates the file, or truncates it if it exists, and opens it
	// for appending.
	Create(name string) (File, error)
	// OpenAppend opens an existing file for appending.
	OpenAppend(name string) (File, error)
	// Open opens an existing file for reading.
	Open(name string) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Rename renames a file, replacing newname if it exists.
	Rename(oldname, newname string) error
	// ReadDir returns the names of the entries of a directory, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates a directory and any missing parents, and makes every
	// directory it creates durable before it returns.
	MkdirAll(dir string) error
	// SyncDir makes the directory's entries durable.
	SyncDir(dir string) error
	// Truncate changes the size of a file. The change is durable only after
	// a Sync of the file.
	Truncate(name string, size int64) error
	// Size returns the size of a file in bytes.
	Size(name string) (int64, error)
}

// OS returns an FS backed by the operating system through package os. Names
// are OS paths, relative to the working directory unless absolute; it is
// not rooted anywhere. The returned value is safe for concurrent use.
func OS() FS { return osFS{} }

type osFS struct{}

func (osFS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
}

func (osFS) OpenAppend(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
}

func (osFS) Open(name string) (File, error) { return os.Open(name) }

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (fs osFS) MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	// Find the directories that do not exist yet, deepest first.
	var missing []string
	for d := dir; ; {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Make each new entry durable by syncing the directory that holds it,
	// outermost first.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fs.SyncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot sync directory %q: %w", dir, err)
	}
	return nil
}

func (osFS) Truncate(name string, size int64) error { return os.Truncate(name, size) }

func (osFS) Size(name string) (int64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
