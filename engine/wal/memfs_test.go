package wal

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
)

// TestMemFSCrashModel checks what CrashClone keeps after each kind of
// operation.
func TestMemFSCrashModel(t *testing.T) {
	write := func(t *testing.T, m *MemFS, name, data string, sync bool) {
		t.Helper()
		f, err := m.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	appendTo := func(t *testing.T, m *MemFS, name, data string, sync bool) {
		t.Helper()
		f, err := m.OpenAppend(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(data))
		if sync {
			f.Sync()
		}
		f.Close()
	}
	tests := []struct {
		name string
		ops  func(t *testing.T, m *MemFS)
		want map[string]string // files after a crash: path -> contents
	}{
		{"created, file and dir synced", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", true)
			m.SyncDir("/d")
		}, map[string]string{"/d/a": "hello"}},
		{"created, dir not synced", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", true)
		}, map[string]string{}},
		{"created, file not synced", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", false)
			m.SyncDir("/d")
		}, map[string]string{"/d/a": ""}},
		{"unsynced append lost", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", true)
			m.SyncDir("/d")
			appendTo(t, m, "/d/a", " world", false)
		}, map[string]string{"/d/a": "hello"}},
		{"synced append kept", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", true)
			m.SyncDir("/d")
			appendTo(t, m, "/d/a", " world", true)
		}, map[string]string{"/d/a": "hello world"}},
		{"remove without dir sync", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", true)
			m.SyncDir("/d")
			m.Remove("/d/a")
		}, map[string]string{"/d/a": "hello"}},
		{"remove with dir sync", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", true)
			m.SyncDir("/d")
			m.Remove("/d/a")
			m.SyncDir("/d")
		}, map[string]string{}},
		{"rename without dir sync", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello", true)
			m.SyncDir("/d")
			m.Rename("/d/a", "/d/b")
		}, map[string]string{"/d/a": "hello"}},
		{"rename with dir sync", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/tmp", "new", true)
			write(t, m, "/d/a", "old", true)
			m.SyncDir("/d")
			m.Rename("/d/tmp", "/d/a")
			m.SyncDir("/d")
		}, map[string]string{"/d/a": "new"}},
		{"rename across dirs, only target synced", func(t *testing.T, m *MemFS) {
			m.MkdirAll("/e")
			write(t, m, "/d/a", "hello", true)
			m.SyncDir("/d")
			m.Rename("/d/a", "/e/a")
			m.SyncDir("/e")
		}, map[string]string{"/d/a": "hello", "/e/a": "hello"}},
		{"unsynced truncate undone", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello world", true)
			m.SyncDir("/d")
			m.Truncate("/d/a", 5)
		}, map[string]string{"/d/a": "hello world"}},
		{"synced truncate then append", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "hello world", true)
			m.SyncDir("/d")
			m.Truncate("/d/a", 5)
			appendTo(t, m, "/d/a", "!", true)
		}, map[string]string{"/d/a": "hello!"}},
		{"recreate without sync keeps old data", func(t *testing.T, m *MemFS) {
			write(t, m, "/d/a", "old", true)
			m.SyncDir("/d")
			write(t, m, "/d/a", "new", false)
		}, map[string]string{"/d/a": "old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemFS()
			if err := m.MkdirAll("/d"); err != nil {
				t.Fatal(err)
			}
			tt.ops(t, m)
			c := m.CrashClone()
			got := map[string]string{}
			for _, dir := range []string{"/d", "/e"} {
				names, _ := c.ReadDir(dir)
				for _, n := range names {
					got[dir+"/"+n] = string(readFile(t, c, dir+"/"+n))
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("after crash: %q, want %q", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("after crash: %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestMemFSCrashCloneTorn(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d")
	f, _ := m.Create("/d/a")
	f.Write([]byte("durable"))
	f.Sync()
	m.SyncDir("/d")
	f.Write([]byte("0123456789"))
	for _, tt := range []struct {
		keep int
		want string
	}{{0, "durable"}, {3, "durable012"}, {10, "durable0123456789"}, {99, "durable0123456789"}, {-1, "durable"}} {
		c := m.CrashCloneTorn(func(name string, n int) int {
			if name != "/d/a" || n != 10 {
				t.Fatalf("keep(%q, %d)", name, n)
			}
			return tt.keep
		})
		if got := string(readFile(t, c, "/d/a")); got != tt.want {
			t.Fatalf("keep %d: %q, want %q", tt.keep, got, tt.want)
		}
	}
	// The clone is independent.
	c := m.CrashClone()
	f.Write([]byte("more"))
	f.Sync()
	if got := string(readFile(t, c, "/d/a")); got != "durable" {
		t.Fatalf("clone changed: %q", got)
	}
}

func TestMemFSHook(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d")
	f, _ := m.Create("/d/a")
	f.Write([]byte("x"))
	injected := errors.New("injected")
	var seen []Op
	m.SetHook(func(op Op, name string) error {
		seen = append(seen, op)
		return injected
	})
	if _, err := f.Write([]byte("y")); err != injected {
		t.Fatalf("Write: %v", err)
	}
	if err := f.Sync(); err != injected {
		t.Fatalf("Sync: %v", err)
	}
	if err := m.SyncDir("/d"); err != injected {
		t.Fatalf("SyncDir: %v", err)
	}
	if _, err := m.Create("/d/b"); err != injected {
		t.Fatalf("Create: %v", err)
	}
	m.SetHook(nil)
	if got := string(readFile(t, m, "/d/a")); got != "x" {
		t.Fatalf("failed write changed the file: %q", got)
	}
	if names, _ := m.ReadDir("/d"); !slices.Equal(names, []string{"a"}) {
		t.Fatalf("failed create changed the dir: %v", names)
	}
	if synced, _ := m.SyncedSize("/d/a"); synced != 0 {
		t.Fatalf("failed sync made %d bytes durable", synced)
	}
	if !slices.Equal(seen, []Op{OpWrite, OpSync, OpSyncDir, OpCreate}) {
		t.Fatalf("hook saw %v", seen)
	}
}

// TestFS runs the same basic checks on both implementations.
func TestFS(t *testing.T) {
	for _, fc := range fsCases {
		t.Run(fc.name, func(t *testing.T) {
			fsys, dir := fc.new(t)
			dir = filepath.Join(dir, "x", "y")
			if err := fsys.MkdirAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := fsys.MkdirAll(dir); err != nil {
				t.Fatalf("MkdirAll of an existing dir: %v", err)
			}
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			if _, err := fsys.Open(a); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Open of a missing file: %v", err)
			}
			writeFile(t, fsys, a, []byte("hello"))
			f, err := fsys.OpenAppend(a)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte(" world"))
			f.Sync()
			f.Close()
			if got := string(readFile(t, fsys, a)); got != "hello world" {
				t.Fatalf("contents %q", got)
			}
			r, err := fsys.Open(a)
			if err != nil {
				t.Fatal(err)
			}
			all, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(all) != "hello world" {
				t.Fatalf("ReadAll = %q, %v", all, err)
			}
			if err := fsys.Truncate(a, 5); err != nil {
				t.Fatal(err)
			}
			if size, _ := fsys.Size(a); size != 5 {
				t.Fatalf("size after Truncate %d", size)
			}
			if err := fsys.Rename(a, b); err != nil {
				t.Fatal(err)
			}
			if names, _ := fsys.ReadDir(dir); !slices.Equal(names, []string{"b"}) {
				t.Fatalf("ReadDir = %v", names)
			}
			if err := fsys.SyncDir(dir); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Remove(b); err != nil {
				t.Fatal(err)
			}
			if _, err := fsys.Size(b); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Size of a removed file: %v", err)
			}
		})
	}
}
