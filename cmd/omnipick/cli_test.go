package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCommandLine runs the real binary with the command lines a new user
// tries first: the list of subcommands and each command's flags go to
// stdout with exit 0; no command, an unknown one or a bad flag is a usage
// error (exit 2) on stderr; nothing starts serving unless asked to.
func TestCommandLine(t *testing.T) {
	bin := omnipickBinary(t)
	subcommands := []string{"omnipick serve", "omnipick cluster", "omnipick repair", "omnipick bench", "omnipick eval", "omnipick help"}
	tests := []struct {
		args      []string
		code      int
		stdoutHas []string // every one present on stdout
		stderrHas []string // every one present on stderr
		quietOut  bool     // stdout must be empty
	}{
		{args: nil, code: 2, stderrHas: subcommands, quietOut: true},
		{args: []string{"-h"}, code: 0, stdoutHas: subcommands},
		{args: []string{"--help"}, code: 0, stdoutHas: subcommands},
		{args: []string{"-help"}, code: 0, stdoutHas: subcommands},
		{args: []string{"help"}, code: 0, stdoutHas: subcommands},
		{args: []string{"help", "serve"}, code: 0, stdoutHas: []string{"usage: omnipick serve", "-demo", "-demo-reseed", "-addr", "-data"}},
		{args: []string{"serve", "-h"}, code: 0, stdoutHas: []string{"usage: omnipick serve", "-demo", "-fsync"}},
		{args: []string{"serve", "--help"}, code: 0, stdoutHas: []string{"usage: omnipick serve", "-max-body"}},
		{args: []string{"help", "repair"}, code: 0, stdoutHas: []string{"usage: omnipick repair", "-data"}},
		{args: []string{"repair", "-h"}, code: 0, stdoutHas: []string{"usage: omnipick repair", "-data"}},
		{args: []string{"help", "eval"}, code: 0, stdoutHas: []string{"usage: omnipick eval", "-set"}},
		{args: []string{"eval", "-fold", "4"}, code: 1, stderrHas: []string{"-fold must be 1, or 2 or 3 with -split validation"}, quietOut: true},
		{args: []string{"eval", "-fold", "3"}, code: 1, stderrHas: []string{"-fold must be 1, or 2 or 3 with -split validation"}, quietOut: true},
		{args: []string{"help", "bench"}, code: 0, stdoutHas: []string{"omnipick bench load", "omnipick bench scale"}},
		{args: []string{"bench", "-h"}, code: 0, stdoutHas: []string{"omnipick bench load", "omnipick bench world"}},
		{args: []string{"help", "bench", "load"}, code: 0, stdoutHas: []string{"usage: omnipick bench load", "-target", "-ceiling"}},
		{args: []string{"bench", "load", "-h"}, code: 0, stdoutHas: []string{"usage: omnipick bench load", "-duration"}},
		{args: []string{"bench", "scale", "-h"}, code: 0, stdoutHas: []string{"usage: omnipick bench scale", "-customers"}},
		{args: []string{"bench", "scale", "-reuse"}, code: 1, stderrHas: []string{"-reuse needs -data"}, quietOut: true},
		{args: []string{"bench", "scale", "-cpuprofile", "p"}, code: 1, stderrHas: []string{"-cpuprofile goes with -reuse"}, quietOut: true},
		{args: []string{"bench", "scale", "-reuse", "-data", "/nonexistent/omnipick-folder"}, code: 1, stderrHas: []string{"cannot measure the data folder"}, quietOut: true},
		{args: []string{"bench"}, code: 2, stderrHas: []string{"missing tool", "omnipick bench load"}, quietOut: true},
		{args: []string{"frob"}, code: 2, stderrHas: append([]string{`unknown command "frob"`}, subcommands...), quietOut: true},
		{args: []string{"help", "help"}, code: 0, stdoutHas: subcommands},
		{args: []string{"help", "cluster"}, code: 0, stdoutHas: []string{"usage: omnipick cluster", "-nodes", "-replicas"}},
		{args: []string{"cluster", "-bogus"}, code: 2, stderrHas: []string{"-bogus", "usage: omnipick cluster"}, quietOut: true},
		{args: []string{"help", "frob"}, code: 2, stderrHas: []string{`unknown command "frob"`}, quietOut: true},
		{args: []string{"-demo"}, code: 2, stderrHas: []string{"omnipick serve -demo"}, quietOut: true},
		{args: []string{"serve", "-no-such-flag"}, code: 2, stderrHas: []string{"-no-such-flag", "usage: omnipick serve"}, quietOut: true},
		{args: []string{"serve", "-addr", "0.0.0.0:7199", "-data", "d"}, code: 1, stderrHas: []string{"refusing to serve", "without API keys"}, quietOut: true},
		{args: []string{"serve", "extra"}, code: 2, stderrHas: []string{`unexpected arguments ["extra"]`}, quietOut: true},
	}
	for _, tc := range tests {
		t.Run(strings.Join(append([]string{"omnipick"}, tc.args...), " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Env = testEnv()
			cmd.Dir = t.TempDir() // nothing may be created in it
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			for _, s := range tc.stdoutHas {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, &stdout)
				}
			}
			for _, s := range tc.stderrHas {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, &stderr)
				}
			}
			if tc.quietOut && stdout.Len() > 0 {
				t.Errorf("stdout not empty:\n%s", &stdout)
			}
			if ents, _ := os.ReadDir(cmd.Dir); len(ents) > 0 {
				t.Errorf("the command created %v in its working folder", ents)
			}
		})
	}
}
