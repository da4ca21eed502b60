package main

import (
	"os"
	"strings"
	"testing"
)

func TestAdvertiseURL(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:7071", "http://127.0.0.1:7071"},
		{"10.0.0.2:7070", "http://10.0.0.2:7070"},
		{"[::1]:7070", "http://[::1]:7070"},
		{"0.0.0.0:7070", "http://" + host + ":7070"},
		{"[::]:7070", "http://" + host + ":7070"},
	} {
		if got := advertiseURL(tc.addr, "n1"); got != tc.want || strings.Contains(got, "0.0.0.0") {
			t.Errorf("advertiseURL(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
