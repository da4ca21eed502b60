package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakeTestRunsEveryAllocationTest keeps `make test` honest about the
// allocation proofs: they count allocations, so they run without -race
// (their files are built with !race, or they skip under it) in the pass
// selected by the Makefile's ALLOC_TESTS pattern. A test in a !race file,
// or one that counts allocations and skips under -race, whose name the
// pattern does not match would run in neither pass.
func TestMakeTestRunsEveryAllocationTest(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ALLOC_TESTS\s*:=\s*(\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile sets no ALLOC_TESTS := <pattern>")
	}
	if !strings.Contains(string(mk), "-run '$(ALLOC_TESTS)'") {
		t.Fatal("make test does not run -run '$(ALLOC_TESTS)'")
	}
	pattern := regexp.MustCompile(string(m[1]))
	found := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "data") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
		if err != nil {
			return err
		}
		noRace := strings.Contains(string(src), "//go:build !race")
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			// A test runs only in the pass without -race if its file is
			// built with !race, or if it counts allocations and skips
			// under the race detector.
			counts, skipsRace := false, false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					counts = counts || n.Sel.Name == "AllocsPerRun"
				case *ast.Ident:
					skipsRace = skipsRace || n.Name == "raceDetector" || n.Name == "raceEnabled"
				}
				return true
			})
			if !noRace && !(counts && skipsRace) {
				continue
			}
			found++
			if !pattern.MatchString(fn.Name.Name) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s: %s counts allocations (or is built only without -race) but make test's -run %q does not select it: name it ...Allocs or ...AllocateNothing",
					rel, fn.Name.Name, pattern)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 5 {
		t.Fatalf("found only %d allocation tests: the scan is broken", found)
	}
	t.Logf("%d allocation tests, all selected by -run %q", found, pattern)
}
