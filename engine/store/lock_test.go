package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLockDir: a folder locked once cannot be locked again (flock(2)
// conflicts between two open file descriptions, even in one process), the
// refusal names the folder and the owner's pid, and Unlock lets the next
// owner in. The two-process case is cmd/omnipick's
// TestOneOwnerPerDataFolder.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, LockFile))
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("the lock file holds %q, want this pid", b)
	}
	_, err = LockDir(dir)
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.PID != os.Getpid() || le.Dir != dir {
		t.Fatalf("second LockDir: %v, want a *LockedError naming %s and pid %d", err, dir, os.Getpid())
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("the message names neither folder nor pid: %v", err)
	}
	// Open on the OS file system takes the lock too, before reading.
	if _, _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open on a locked folder: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	st, _, err := Open(Options{Dir: dir, NoBackground: true})
	if err != nil {
		t.Fatalf("Open after Unlock: %v", err)
	}
	if _, err := LockDir(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("LockDir while a Store is open: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Close: %v", err)
	}
	l.Unlock()
}
