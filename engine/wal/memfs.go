package wal

import (
	"io"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Op names a MemFS operation, for error injection with (*MemFS).SetHook.
type Op string

// Operations passed to a MemFS hook.
const (
	OpCreate   Op = "create"
	OpOpen     Op = "open" // Open and OpenAppend
	OpRead     Op = "read" // Read and ReadAt
	OpWrite    Op = "write"
	OpSync     Op = "sync"
	OpSyncDir  Op = "syncdir"
	OpRemove   Op = "remove"
	OpRename   Op = "rename"
	OpMkdir    Op = "mkdir"
	OpReadDir  Op = "readdir"
	OpTruncate Op = "truncate"
)

// MemFS is an in-memory FS that remembers what a power loss would keep, so
// tests can simulate a crash at any moment with CrashClone.
//
// # Crash model
//
// MemFS models files as inodes and directories as maps from names to inodes,
// each with a current state and a durable state:
//
//   - A file's durable contents are its contents as of its last File.Sync
//     (of any handle to it). Writes and truncations after that are lost by a
//     crash. Syncing a file does not make its directory entry durable.
//   - A directory's durable entries are its entries as of its last SyncDir.
//     Entries created, removed or renamed since then are undone by a crash:
//     a file created and synced but whose directory was not synced
//     disappears; a file removed without a directory sync reappears with
//     its durable contents; a rename without a sync of both directories is
//     undone on the side that was not synced (so the file may appear under
//     both names, or neither).
//   - MkdirAll is durable at once, as the FS contract requires.
//   - Write errors and sync errors injected with SetHook change nothing.
//
// CrashClone keeps exactly the durable state. CrashCloneTorn also keeps,
// for each file whose changes since its last sync are only appends, a prefix
// of the unsynced bytes chosen by the caller, modelling a disk that wrote
// back some of the page cache in order before the power went out. Neither
// models reordered or zero-filled write-back; the corrupt fixtures in
// testdata/wal and the bit-flip tests cover those.
//
// A MemFS is safe for concurrent use; so are its files, as far as File
// allows.
type MemFS struct {
	mu   sync.Mutex
	root *memNode
	hook func(op Op, name string) error
	// capacity bounds the bytes of all files' current contents; 0: none.
	capacity int64
}

type memNode struct {
	dir bool

	// Directories.
	children map[string]*memNode // current entries
	synced   map[string]*memNode // entries as of the last SyncDir

	// Files.
	data     []byte // current contents
	durable  []byte // contents as of the last Sync; never aliases data
	appended bool   // data[:len(durable)] == durable: only appends since the last Sync
}

func newDir() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, synced: map[string]*memNode{}}
}

// NewMemFS returns an empty MemFS whose root directory exists.
func NewMemFS() *MemFS { return &MemFS{root: newDir()} }

// SetHook installs a function called before every operation with its name
// (and, for OpRead, OpWrite and OpSync, the name the file was opened with).
// If it returns an error, the operation fails with that error and changes
// nothing. The hook is called without MemFS locks held, so it may use the
// MemFS (for instance to take a CrashClone just before a sync). A nil hook
// removes it.
func (m *MemFS) SetHook(hook func(op Op, name string) error) {
	m.mu.Lock()
	m.hook = hook
	m.mu.Unlock()
}

// SetCapacity makes the file system hold at most n bytes of file contents
// (all files' current contents together; 0 removes the bound), like a
// small disk: a Write that would pass it writes what fits and fails with
// ENOSPC, as write(2) does. Truncating or removing files makes room.
func (m *MemFS) SetCapacity(n int64) {
	m.mu.Lock()
	m.capacity = n
	m.mu.Unlock()
}

// usedLocked returns the bytes of all files' current contents. m.mu must
// be held. Removed files that are still open are not counted.
func (m *MemFS) usedLocked() int64 {
	var used int64
	var walk func(n *memNode)
	walk = func(n *memNode) {
		for _, c := range n.children {
			if c.dir {
				walk(c)
			} else {
				used += int64(len(c.data))
			}
		}
	}
	walk(m.root)
	return used
}

func (m *MemFS) callHook(op Op, name string) error {
	m.mu.Lock()
	h := m.hook
	m.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(op, name)
}

// CrashClone returns a new MemFS holding what would remain after a power
// loss at this moment: only durable file contents and durable directory
// entries (see the crash model in the MemFS doc). The clone has no hook and
// shares nothing with m.
func (m *MemFS) CrashClone() *MemFS {
	return m.CrashCloneTorn(nil)
}

// CrashCloneTorn is like CrashClone but, for each surviving file whose
// changes since its last sync are only appends of n > 0 bytes, also keeps
// the first keep(name, n) of those bytes (clamped to [0, n]). name is the
// file's slash-separated path in the clone. A nil keep keeps none.
func (m *MemFS) CrashCloneTorn(keep func(name string, n int) int) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[*memNode]*memNode{}
	var clone func(n *memNode, name string) *memNode
	clone = func(n *memNode, name string) *memNode {
		if c, ok := seen[n]; ok {
			return c
		}
		c := &memNode{dir: n.dir, appended: true}
		seen[n] = c
		if n.dir {
			c.children = make(map[string]*memNode, len(n.synced))
			for child, cn := range n.synced {
				c.children[child] = clone(cn, path.Join(name, child))
			}
			c.synced = maps.Clone(c.children)
			return c
		}
		data := slices.Clone(n.durable)
		if keep != nil && n.appended && len(n.data) > len(n.durable) {
			extra := n.data[len(n.durable):]
			k := min(max(keep(name, len(extra)), 0), len(extra))
			data = append(data, extra[:k]...)
		}
		c.data = data
		c.durable = slices.Clone(data)
		return c
	}
	return &MemFS{root: clone(m.root, "/")}
}

// memSplit turns a name into the path components below the root.
func memSplit(name string) []string {
	p := path.Clean("/" + filepath.ToSlash(name))
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// walk returns the node for parts, or nil. m.mu must be held.
func (m *MemFS) walk(parts []string) *memNode {
	n := m.root
	for _, p := range parts {
		if !n.dir {
			return nil
		}
		n = n.children[p]
		if n == nil {
			return nil
		}
	}
	return n
}

// parent returns the directory holding name and name's base. m.mu must be
// held.
func (m *MemFS) parent(op, name string) (*memNode, string, error) {
	parts := memSplit(name)
	if len(parts) == 0 {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	dir := m.walk(parts[:len(parts)-1])
	if dir == nil || !dir.dir {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return dir, parts[len(parts)-1], nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	if err := m.callHook(OpCreate, name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent("create", name)
	if err != nil {
		return nil, err
	}
	n := dir.children[base]
	switch {
	case n == nil:
		n = &memNode{appended: true}
		dir.children[base] = n
	case n.dir:
		return nil, &fs.PathError{Op: "create", Path: name, Err: errIsDir}
	default:
		n.data = nil
		n.appended = len(n.durable) == 0
	}
	return &memFile{fs: m, n: n, name: name, write: true}, nil
}

// OpenAppend implements FS.
func (m *MemFS) OpenAppend(name string) (File, error) { return m.open(name, true) }

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) { return m.open(name, false) }

func (m *MemFS) open(name string, write bool) (File, error) {
	if err := m.callHook(OpOpen, name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memSplit(name))
	if n == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	return &memFile{fs: m, n: n, name: name, write: write}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	if err := m.callHook(OpRemove, name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent("remove", name)
	if err != nil {
		return err
	}
	n := dir.children[base]
	if n == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: errNotEmpty}
	}
	delete(dir.children, base)
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	if err := m.callHook(OpRename, oldname); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	odir, obase, err := m.parent("rename", oldname)
	if err != nil {
		return err
	}
	ndir, nbase, err := m.parent("rename", newname)
	if err != nil {
		return err
	}
	n := odir.children[obase]
	if n == nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if old := ndir.children[nbase]; old != nil && old.dir {
		return &fs.PathError{Op: "rename", Path: newname, Err: errIsDir}
	}
	delete(odir.children, obase)
	ndir.children[nbase] = n
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	if err := m.callHook(OpReadDir, dir); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memSplit(dir))
	if n == nil || !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	return slices.Sorted(maps.Keys(n.children)), nil
}

// MkdirAll implements FS. The directories it creates are durable at once.
func (m *MemFS) MkdirAll(dir string) error {
	if err := m.callHook(OpMkdir, dir); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, p := range memSplit(dir) {
		c := n.children[p]
		if c == nil {
			c = newDir()
			n.children[p] = c
			n.synced[p] = c
		} else if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errNotDir}
		}
		n = c
	}
	return nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	if err := m.callHook(OpSyncDir, dir); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memSplit(dir))
	if n == nil || !n.dir {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	n.synced = maps.Clone(n.children)
	return nil
}

// Truncate implements FS.
func (m *MemFS) Truncate(name string, size int64) error {
	if err := m.callHook(OpTruncate, name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memSplit(name))
	if n == nil || n.dir {
		return &fs.PathError{Op: "truncate", Path: name, Err: fs.ErrNotExist}
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: name, Err: fs.ErrInvalid}
	}
	if size <= int64(len(n.data)) {
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
	}
	if size < int64(len(n.durable)) {
		n.appended = false
	}
	return nil
}

// Size implements FS.
func (m *MemFS) Size(name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memSplit(name))
	if n == nil || n.dir {
		return 0, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return int64(len(n.data)), nil
}

// SyncedSize returns how many bytes of the file are durable, for tests.
func (m *MemFS) SyncedSize(name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memSplit(name))
	if n == nil || n.dir {
		return 0, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return int64(len(n.durable)), nil
}

type memError string

func (e memError) Error() string { return string(e) }

const (
	errIsDir     = memError("is a directory")
	errNotDir    = memError("not a directory")
	errNotEmpty  = memError("directory not empty")
	errReadOnly  = memError("file not open for writing")
	errWriteOnly = memError("file not open for reading")
)

// memFile is a handle to a MemFS file.
type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	write  bool
	pos    int64 // read offset
	closed bool
}

func (f *memFile) Read(p []byte) (int, error) {
	if err := f.fs.callHook(OpRead, f.name); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.pos:])
	f.pos += int64(k)
	return k, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.callHook(OpRead, f.name); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.fs.callHook(OpWrite, f.name); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if c := f.fs.capacity; c > 0 {
		if room := c - f.fs.usedLocked(); room < int64(len(p)) {
			room = max(room, 0)
			f.n.data = append(f.n.data, p[:room]...)
			return int(room), &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
	}
	f.n.data = append(f.n.data, p...)
	return len(p), nil
}

func (f *memFile) Sync() error {
	if err := f.fs.callHook(OpSync, f.name); err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "sync", Path: f.name, Err: fs.ErrClosed}
	}
	n := f.n
	if n.appended {
		n.durable = append(n.durable, n.data[len(n.durable):]...)
	} else {
		n.durable = slices.Clone(n.data)
		n.appended = true
	}
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// check reports whether the handle may be used for op. f.fs.mu must be held.
func (f *memFile) check(op string, write bool) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case write && !f.write:
		return &fs.PathError{Op: op, Path: f.name, Err: errReadOnly}
	case !write && f.write:
		return &fs.PathError{Op: op, Path: f.name, Err: errWriteOnly}
	}
	return nil
}
