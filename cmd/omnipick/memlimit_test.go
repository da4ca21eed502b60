package main

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMachineMemory(t *testing.T) {
	const meminfo = "MemTotal:       24731408 kB\nMemFree:         1000 kB\n"
	physical := int64(24731408) << 10
	for _, tc := range []struct {
		name   string
		files  map[string]string
		want   int64
		source string
	}{
		{"physical only", map[string]string{"proc/meminfo": meminfo}, physical, "physical memory"},
		{"cgroup v2 limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "8589934592\n"}, 8 << 30, "cgroup memory limit"},
		{"cgroup v2 no limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n"}, physical, "physical memory"},
		{"cgroup v2 nested, the parent lower", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/a/b\n",
			"sys/fs/cgroup/a/b/memory.max": "8589934592\n", "sys/fs/cgroup/a/memory.max": "4294967296\n"}, 4 << 30, "cgroup memory limit"},
		{"cgroup v1 limit under its path", map[string]string{"proc/meminfo": meminfo,
			"proc/self/cgroup":                                          "5:devices:/\n4:memory:/process_api/x1\n0::/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                "9223372036854771712\n",
			"sys/fs/cgroup/memory/process_api/x1/memory.limit_in_bytes": "2147483648\n"}, 2 << 30, "cgroup memory limit"},
		{"cgroup v1 unlimited", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, physical, "physical memory"},
		{"cgroup above physical", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n",
			"sys/fs/cgroup/memory.max": "107374182400\n"}, physical, "physical memory"},
		{"nothing readable", map[string]string{}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			got, source := machineMemory(fsys)
			if got != tc.want || source != tc.source {
				t.Fatalf("machineMemory = %d (%s), want %d (%s)", got, source, tc.want, tc.source)
			}
		})
	}
}

func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))                           // restore the test binary's
	fsys := fstest.MapFS{"proc/meminfo": {Data: []byte("MemTotal: 1048576 kB\n")}} // 1 GiB
	for _, tc := range []struct {
		name    string
		percent int
		env     string
		limit   int64 // the runtime's after; -1: unchanged
		log     string
		err     bool
	}{
		{"85% of the machine", 85, "", (1 << 30) / 100 * 85, "source=\"physical memory\"", false},
		{"GOMEMLIMIT wins", 85, "512MiB", -1, "source=GOMEMLIMIT", false},
		{"off", 0, "", -1, "-memory-limit-percent 0", false},
		{"bad percent", 120, "", -1, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			var buf bytes.Buffer
			err := setMemoryLimit(tc.percent, tc.env, fsys, slog.New(slog.NewTextHandler(&buf, nil)))
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			want := tc.limit
			if want < 0 {
				want = math.MaxInt64
			}
			if got := debug.SetMemoryLimit(-1); got != want {
				t.Errorf("limit %d, want %d", got, want)
			}
			if !strings.Contains(buf.String(), tc.log) {
				t.Errorf("log %q, want it to say %q", buf.String(), tc.log)
			}
		})
	}
}
