package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/omnipick/omnipick/engine/store"
	"github.com/omnipick/omnipick/engine/wal"
)

// runRepair truncates a corrupt write-ahead log at its last good record.
func runRepair(args []string) error {
	fs := newFlags("repair", "-data DIR", "Truncates a corrupt write-ahead log at its last good record (see docs/operations.md).")
	dataDir := fs.String("data", "./data", "data folder")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// A running server owns the folder: repairing under it would cut
	// records it is appending.
	if _, err := os.Stat(*dataDir); err != nil {
		return fmt.Errorf("cannot repair %q: %w", *dataDir, err)
	}
	lock, err := store.LockDir(*dataDir)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	dir := filepath.Join(*dataDir, "wal")
	info, err := wal.Repair(wal.OS(), dir)
	if err != nil {
		return fmt.Errorf("cannot repair %q: %w", dir, err)
	}
	if info.DroppedRecords == 0 && info.DroppedBytes == 0 && info.RemovedSegments == 0 {
		fmt.Printf("the log in %s is intact: nothing dropped (last record %d)\n", dir, info.KeptLast)
		return nil
	}
	fmt.Printf("truncated the log in %s after record %d: dropped %d intact records after the damage (%d bytes, %d later segments removed)\n",
		dir, info.KeptLast, info.DroppedRecords, info.DroppedBytes, info.RemovedSegments)
	return nil
}
