package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock file in a data folder. Its content is
// the owner's process id, for the message a second process prints; the
// lock itself is the flock(2) on it, which the kernel drops when the
// owner's process ends in any way (a SIGKILL included), so a stale file
// never blocks a restart.
const LockFile = "LOCK"

// ErrLocked is wrapped by the error LockDir returns when another process
// holds the folder.
var ErrLocked = errors.New("store: data folder in use by another process")

// LockedError says who holds a data folder. It wraps ErrLocked.
type LockedError struct {
	Dir string
	PID int // 0 when the owner had not yet written it
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("data folder %q is in use by %s (it holds %s): stop it first, or give this command another -data folder",
		e.Dir, who, filepath.Join(e.Dir, LockFile))
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is an exclusive hold on a data folder, released by Unlock or by the
// end of the process.
type Lock struct {
	f *os.File
}

// LockDir takes the exclusive lock on the data folder dir (creating dir if
// needed) without waiting: if another process holds it, it returns a
// *LockedError naming the folder and the holder's process id, and changes
// nothing in the folder. Take it before reading anything in the folder.
func LockDir(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create data folder %q: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	// O_CREATE without O_TRUNC: a process that does not get the lock
	// leaves the owner's pid in place.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock file %q: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("cannot lock %q: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			// The pid only serves the message of a process refused the
			// lock: a full disk must not stop the owner.
			f.Truncate(0)
		}
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock. The file stays: removing it would let a
// process that opened it before the removal lock an orphaned inode while
// a third locks a new file. Unlock on nil does nothing.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	f.Truncate(0)
	return f.Close() // closing the last descriptor drops the flock
}
