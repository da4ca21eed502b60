package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go runtime's soft memory limit (GOMEMLIMIT) for serve. Without one
// the heap may grow to twice the live state before a collection (GOGC
// 100): the 1M-product, 10M-customer world's 7.8 GiB live heap peaked at
// 13.8 GiB RSS. With a limit the runtime collects harder as the heap
// nears it instead of growing past the machine or the container and being
// killed. serve sets it to a share of the memory it may use, unless
// GOMEMLIMIT is set.

// noMemLimit is what cgroups write for "no limit" (v1 writes the largest
// page-aligned int64); anything this large is no limit.
const noMemLimit = 1 << 62

// machineMemory returns the memory this process may use: the smallest of
// its cgroup's memory limits (v2 memory.max, v1 memory.limit_in_bytes,
// up its cgroup's ancestors) and the machine's physical memory
// (/proc/meminfo MemTotal), read from fsys (the root). source names where
// it came from; 0 when nothing could be read.
func machineMemory(fsys fs.FS) (bytes int64, source string) {
	if kb, ok := memTotalKB(fsys); ok {
		bytes, source = kb<<10, "physical memory"
	}
	if lim, ok := cgroupLimit(fsys); ok && (bytes == 0 || lim < bytes) {
		bytes, source = lim, "cgroup memory limit"
	}
	return bytes, source
}

func memTotalKB(fsys fs.FS) (int64, bool) {
	f, err := fsys.Open("proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n, err == nil && n > 0
		}
	}
	return 0, false
}

// cgroupLimit returns the lowest memory limit over the process's cgroup
// and its ancestors, v2 or v1 (/proc/self/cgroup says which), if any.
func cgroupLimit(fsys fs.FS) (int64, bool) {
	b, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	best, found := int64(0), false
	for line := range strings.Lines(string(b)) {
		// hierarchy-id:controllers:path; v2 is "0::path".
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		dir, file := "", ""
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir, file = "sys/fs/cgroup", "memory.max"
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dir, file = "sys/fs/cgroup/memory", "memory.limit_in_bytes"
		default:
			continue
		}
		// A container sees its own cgroup as the root of the mount, or
		// the whole path below it: try the path and each ancestor.
		for p := path.Clean("/" + parts[2]); ; p = path.Dir(p) {
			if lim, ok := readLimit(fsys, path.Join(dir, p, file)); ok && (!found || lim < best) {
				best, found = lim, true
			}
			if p == "/" {
				break
			}
		}
	}
	return best, found
}

func readLimit(fsys fs.FS, name string) (int64, bool) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64) // "max": no limit
	return n, err == nil && n > 0 && n < noMemLimit
}

// defaultMemoryLimitPercent is serve's -memory-limit-percent: enough head
// room for the kernel and the page cache the snapshots go through.
const defaultMemoryLimitPercent = 85

// setMemoryLimit sets the runtime's soft memory limit to percent of
// machineMemory, unless env (GOMEMLIMIT's value) is set, which the
// runtime has applied already, or percent is 0. It logs what it decided.
func setMemoryLimit(percent int, env string, fsys fs.FS, log *slog.Logger) error {
	switch {
	case percent < 0 || percent > 100:
		return fmt.Errorf("-memory-limit-percent %d: want 0 to 100", percent)
	case env != "":
		log.Info("memory limit", "bytes", debug.SetMemoryLimit(-1), "source", "GOMEMLIMIT")
		return nil
	case percent == 0:
		log.Info("memory limit", "bytes", "none", "source", "-memory-limit-percent 0")
		return nil
	}
	total, source := machineMemory(fsys)
	if total == 0 {
		log.Warn("memory limit: none set, the machine's memory could not be read", "source", "/proc/meminfo and cgroups")
		return nil
	}
	limit := total / 100 * int64(percent)
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit, "percent", percent, "of", total, "source", source)
	return nil
}
