package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README is tested: every shell example in it runs, in order, against
// a fresh `serve -demo` of the real binary, and what the text says it shows
// is checked; docs/tour.sh holds the tour's commands step for step and runs
// too. Each example carries a marker, <!-- check: NAME -->, naming its
// check below; an example without one fails the test, so none is left
// unchecked.

const readmePath = "../../README.md"
const tourPath = "../../docs/tour.sh"

// example is one ```sh block of the README and its check's name.
type example struct {
	name string
	line int
	body string
}

var (
	markerRE = regexp.MustCompile(`^\s*<!-- check: ([a-z0-9-]+) -->\s*$`)
	fenceRE  = regexp.MustCompile("^(\\s*)```(\\w*)\\s*$")
)

// readmeExamples returns the README's shell examples, in order.
func readmeExamples(t *testing.T) []example {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []example
	marker := ""
	for i := 0; i < len(lines); i++ {
		if m := markerRE.FindStringSubmatch(lines[i]); m != nil {
			marker = m[1]
			continue
		}
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			if strings.TrimSpace(lines[i]) != "" {
				marker = "" // a marker names the block right after it
			}
			continue
		}
		indent, lang := m[1], m[2]
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if lang == "sh" || lang == "bash" || lang == "shell" {
			if marker == "" {
				t.Errorf("README.md:%d: a shell example without a <!-- check: NAME --> marker: every example must be checked", start+1)
			}
			out = append(out, example{name: marker, line: start + 1, body: strings.Join(body, "\n") + "\n"})
		}
		marker = ""
	}
	return out
}

// runExample runs a README example's commands with bash in dir against the
// server at addr (for localhost:7070), and returns each command's output:
// a command starts at a line beginning with curl.
func runExample(t *testing.T, ex example, addr, dir string, env ...string) []string {
	t.Helper()
	const sep = "\x1e--next-command--\x1e"
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, l := range strings.Split(ex.body, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "curl ") {
			fmt.Fprintf(&script, "printf '%%s' '%s'\n", sep)
		}
		script.WriteString(strings.ReplaceAll(l, "localhost:7070", addr) + "\n")
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(testEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("README.md:%d (%s): %v\nstderr: %s\nstdout: %s", ex.line, ex.name, err, &stderr, &stdout)
	}
	outs := strings.Split(stdout.String(), sep)
	return outs[1:] // before the first command: nothing
}

// jsonValues decodes the JSON values of outputs, one after another.
func jsonValues(t *testing.T, outs ...string) []reply {
	t.Helper()
	var vals []reply
	for _, o := range outs {
		dec := json.NewDecoder(strings.NewReader(o))
		for {
			var r reply
			err := dec.Decode(&r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("cannot decode %q: %v", o, err)
			}
			vals = append(vals, r)
		}
	}
	return vals
}

// reply is any JSON answer the examples get: a write's, picks, a profile,
// an error.
type reply struct {
	Applied  *int              `json:"applied"`
	Rejected []json.RawMessage `json:"rejected"`
	Customer string            `json:"customer"`
	Context  string            `json:"context"`
	Picks    []struct {
		Product string   `json:"product"`
		Reason  string   `json:"reason"`
		Sizes   []string `json:"sizes"`
		Brand   string   `json:"brand"`
		Price   float64  `json:"price"`
	} `json:"picks"`
	Purchases []struct{ Product string } `json:"purchases"`
	Views     []struct{ Product string } `json:"views"`
	Sizes     []struct {
		SizeGroup string `json:"size_group"`
		Size      string
		Current   bool
	} `json:"sizes"`
	Error string `json:"error"`
	Field string `json:"field"`
}

func (r reply) products() []string {
	var ps []string
	for _, p := range r.Picks {
		ps = append(ps, p.Product)
	}
	return ps
}

// wantApplied checks a write reply.
func wantApplied(t *testing.T, r reply, n int) {
	t.Helper()
	if r.Applied == nil || *r.Applied != n || len(r.Rejected) != 0 {
		t.Errorf("a write answered applied %v, rejected %s; want %d applied, none rejected", r.Applied, r.Rejected, n)
	}
}

// wantNone checks that none of ids is among the picks.
func wantNone(t *testing.T, what string, r reply, ids ...string) {
	t.Helper()
	for _, p := range r.Picks {
		if slices.Contains(ids, p.Product) {
			t.Errorf("%s shows %s: %v", what, p.Product, r.products())
		}
	}
}

func wantTop(t *testing.T, what string, r reply, reason string, ids ...string) {
	t.Helper()
	ps := r.products()
	if len(ps) < len(ids) || !sameSet(ps[:len(ids)], ids) {
		t.Errorf("%s: picks %v, want %v first", what, ps, ids)
		return
	}
	for _, p := range r.Picks[:len(ids)] {
		if p.Reason != reason {
			t.Errorf("%s: %s has reason %q, want %q", what, p.Product, p.Reason, reason)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

var bought = []string{"TOUR-SW", "TOUR-LG", "TOUR-HAT"}

// tourChecks check the tour's steps, given the JSON values each step's
// commands answered (the README's blocks and tour.sh's steps alike).
var tourChecks = map[string]func(t *testing.T, v []reply){
	"tour-1": func(t *testing.T, v []reply) { wantLen(t, v, 2); wantApplied(t, v[0], 6); wantApplied(t, v[1], 9) },
	"tour-2": func(t *testing.T, v []reply) { wantLen(t, v, 1); wantApplied(t, v[0], 4) },
	"tour-3": func(t *testing.T, v []reply) { wantLen(t, v, 1); wantApplied(t, v[0], 3) },
	"tour-4": func(t *testing.T, v []reply) {
		wantLen(t, v, 1)
		p := v[0]
		if len(p.Picks) != 5 || p.Picks[0].Product != "TOUR-LG" || p.Picks[0].Reason != "cart" || !slices.Equal(p.Picks[0].Sizes, []string{"8"}) {
			t.Errorf("ads picks %+v: want 5, TOUR-LG first with reason cart in size 8", p.Picks)
		}
		wantNone(t, "ads, before the purchases (sold out in size 8, or bought)", p, "TOUR-LG2", "TOUR-SW")
		wantNone(t, "ads, before the purchases (the accessories rise only later)", p, "TOUR-GL", "TOUR-SC")
	},
	"tour-5": func(t *testing.T, v []reply) {
		wantLen(t, v, 2)
		wantApplied(t, v[0], 2)
		wantNone(t, "email after the purchases", v[1], bought...)
		wantTop(t, "email after the purchases: gloves and scarf rise", v[1], "related", "TOUR-GL", "TOUR-SC")
	},
	"tour-6": func(t *testing.T, v []reply) {
		wantLen(t, v, 2)
		if len(v[0].Picks) == 0 {
			t.Error("the Berlin screen shows Sarah nothing")
		}
		wantNone(t, "the Berlin screen for Sarah", v[0], bought...)
		// It knows her: what goes with her purchases, on Berlin's shelves.
		wantTop(t, "the Berlin screen for Sarah", v[0], "related", "TOUR-GL", "TOUR-SC")
		wantTop(t, "a scanned hat in Berlin", v[1], "related", "TOUR-GL", "TOUR-SC")
		wantNone(t, "a scanned hat in Berlin", v[1], "TOUR-HAT")
	},
	"tour-7": func(t *testing.T, v []reply) {
		wantLen(t, v, 1)
		var got []string
		for _, p := range v[0].Purchases {
			got = append(got, p.Product)
		}
		size := false
		for _, s := range v[0].Sizes {
			size = size || s.SizeGroup == "women-numeric" && s.Size == "8" && s.Current
		}
		if !sameSet(got, bought) || !size || len(v[0].Views) != 1 || v[0].Views[0].Product != "TOUR-LG2" {
			t.Errorf("Sarah's profile: purchases %v, sizes %+v, views %+v; want %v, size 8, the thermal leggings viewed", got, v[0].Sizes, v[0].Views, bought)
		}
	},
	"tour-8": func(t *testing.T, v []reply) {
		wantLen(t, v, 2)
		wantApplied(t, v[0], 1)
		if v[1].Context != "TOUR-HAT" {
			t.Errorf("the kiosk's picks.json has context %q, want the scanned TOUR-HAT", v[1].Context)
		}
		wantTop(t, "the kiosk after the scan", v[1], "related", "TOUR-GL", "TOUR-SC")
	},
}

func wantLen(t *testing.T, v []reply, n int) {
	t.Helper()
	if len(v) != n {
		t.Fatalf("%d answers, want %d: %+v", len(v), n, v)
	}
}

// readmeEnv is what the other examples' checks get.
type readmeEnv struct {
	bin, addr, dir string
	outs           []string
}

var exampleChecks = map[string]func(t *testing.T, x readmeEnv){
	"ads": func(t *testing.T, x readmeEnv) {
		if len(x.outs) != 5 {
			t.Fatalf("%d outputs", len(x.outs))
		}
		c := jsonValues(t, x.outs[0])
		if len(c) != 1 || len(c[0].Picks) != 5 {
			t.Errorf("a new cookie's ads picks: %+v, want 5", c)
		}
		lines := strings.Split(strings.TrimSpace(x.outs[1]), "\n")
		members := jsonValues(t, x.outs[1])
		if len(lines) != 3 || len(members) != 3 {
			t.Errorf("cart abandoners of the last week, first 3 lines: %q", x.outs[1])
		}
		for _, m := range members {
			if m.Customer == "" || len(m.Picks) == 0 {
				t.Errorf("an audience member without id or picks: %+v", m)
			}
		}
		csv := readFile(t, filepath.Join(x.dir, "viewers.csv"))
		if rows := strings.Count(csv, "\n"); rows < 2 || !strings.HasPrefix(csv, "customer") {
			t.Errorf("viewers.csv: %d lines: %.200q", rows, csv)
		}
		for _, s := range []string{"<rss", `xmlns:g="http://base.google.com/ns/1.0"`, "<g:image_link>http://" + x.addr + "/img/", "<g:availability>"} {
			if !strings.Contains(x.outs[3], s) {
				t.Errorf("the Google feed's first lines lack %q:\n%s", s, x.outs[3])
			}
		}
		cat := readFile(t, filepath.Join(x.dir, "catalog.csv"))
		if !strings.HasPrefix(cat, "id,") || strings.Count(cat, "\n") < 1000 || !strings.Contains(cat, "http://"+x.addr+"/img/") {
			t.Errorf("catalog.csv: %.300q", cat)
		}
	},
	"email": func(t *testing.T, x readmeEnv) {
		if len(x.outs) != 2 {
			t.Fatalf("%d outputs", len(x.outs))
		}
		v := jsonValues(t, x.outs[0])
		if len(v) != 1 || len(v[0].Picks) != 4 {
			t.Fatalf("campaign picks: %+v", v)
		}
		wantNone(t, "the email campaign", v[0], bought...)
		html := x.outs[1]
		if !strings.HasPrefix(html, `<div class="omnipick-picks" data-channel="email">`) || !strings.Contains(html, `<img src="http://`+x.addr+`/img/`) {
			t.Errorf("the HTML fragment: %s", html)
		}
		at := -1
		for _, p := range v[0].Picks { // the same picks, in the same order: the campaign is stable
			i := strings.Index(html, `data-product="`+p.Product+`" data-reason="`+p.Reason+`"`)
			if i <= at {
				t.Errorf("the HTML fragment does not show %s (reason %s) where the JSON did: %s", p.Product, p.Reason, html)
			}
			at = i
		}
	},
	"screen": func(t *testing.T, x readmeEnv) {
		v := jsonValues(t, x.outs...)
		wantLen(t, v, 4)
		wantTop(t, "a scanned hat in Berlin", v[0], "related", "TOUR-GL", "TOUR-SC")
		wantApplied(t, v[1], 1)
		if v[2].Context != "TOUR-HAT" {
			t.Errorf("picks.json after the scan: context %q", v[2].Context)
		}
		if v[3].Field != "location" || !strings.Contains(v[3].Error, `"store-berlin-l"`) || !strings.Contains(v[3].Error, "store-berlin-1") {
			t.Errorf("a typo in location: %+v, want an error naming it and the known ones", v[3])
		}
	},
	"web": func(t *testing.T, x readmeEnv) {
		v := jsonValues(t, x.outs...)
		wantLen(t, v, 1)
		p := v[0]
		if len(p.Picks) != 8 || p.Picks[0].Product != "TOUR-SC" || p.Picks[0].Reason != "pinned" {
			t.Fatalf("web picks with rules: %+v, want 8, TOUR-SC pinned first", p.Picks)
		}
		wantNone(t, "web", p, bought...)
		buried := false
		for _, pk := range p.Picks {
			if pk.Price > 60 {
				t.Errorf("%s costs %v, over price_max 60", pk.Product, pk.Price)
			}
			if strings.EqualFold(pk.Brand, "move") {
				buried = true
			} else if buried {
				t.Errorf("a buried brand (move) ranks above %s: %v", pk.Product, p.products())
			}
		}
	},
	"exclusions": func(t *testing.T, x readmeEnv) {
		v := jsonValues(t, x.outs...)
		wantLen(t, v, 3)
		wantApplied(t, v[0], 1)
		wantApplied(t, v[1], 1)
		wantNone(t, "Sarah's email after the exclusions", v[2], "TOUR-GL", "TOUR-SC")
		wantNone(t, "Sarah's email after the exclusions", v[2], bought...)
		// The recall holds for everyone; the gloves only for her.
		var other reply
		if _, err := getJSON(http.DefaultClient, "http://"+x.addr+"/v1/picks?channel=screen&location=store-berlin-1&context=TOUR-HAT&k=5", &other); err != nil {
			t.Fatal(err)
		}
		wantNone(t, "anyone's screen after the recall", other, "TOUR-SC")
		if !slices.Contains(other.products(), "TOUR-GL") {
			t.Errorf("the gloves, excluded for Sarah only, left everyone's picks: %v", other.products())
		}
	},
	"setup": func(t *testing.T, x readmeEnv) {
		out, err := exec.Command("make", "-C", "../..", "-n", "run", "test").CombinedOutput()
		if err != nil {
			t.Fatalf("make -n run test: %v\n%s", err, out)
		}
		for _, s := range []string{"building bin/omnipick", "go build -o bin/omnipick ./cmd/omnipick", "bin/omnipick serve", "-demo", "go test -race"} {
			if !strings.Contains(string(out), s) {
				t.Errorf("make run / make test do not %q:\n%s", s, out)
			}
		}
	},
	"long-runs": func(t *testing.T, x readmeEnv) {
		// Too long to run here: check that what they name exists (the
		// tests and fuzz targets, the make targets).
		src := map[string]string{}
		read := func(pkg string) string {
			if s, ok := src[pkg]; ok {
				return s
			}
			files, _ := filepath.Glob(filepath.Join("../..", pkg, "*_test.go"))
			var b strings.Builder
			for _, f := range files {
				b.WriteString(readFile(t, f))
			}
			src[pkg] = b.String()
			return src[pkg]
		}
		lines := strings.Split(x.outs[0], "\n")
		pkg := ""
		for _, l := range lines {
			if m := regexp.MustCompile(`go test (\./[\w/]+)`).FindStringSubmatch(l); m != nil {
				pkg = m[1]
			}
			if m := regexp.MustCompile(`\./(engine/wal) (Fuzz\w+)`).FindStringSubmatch(l); m != nil {
				if !strings.Contains(read(m[1]), "func "+m[2]+"(") {
					t.Errorf("README names %s in ./%s: no such fuzz target", m[2], m[1])
				}
				l = strings.Replace(l, m[0], "", 1)
			}
			for _, m := range regexp.MustCompile(`-run (\w+)|-fuzz (\w+)|(Fuzz\w+)`).FindAllStringSubmatch(l, -1) {
				name := m[1] + m[2] + m[3]
				if name == "XXX" || pkg == "" {
					continue
				}
				if !regexp.MustCompile(`func (Test|Fuzz)?\w*` + name + `\w*\(`).MatchString(read(pkg)) {
					t.Errorf("README names %s in %s: no such test", name, pkg)
				}
			}
			if m := regexp.MustCompile(`^make ([\w-]+)`).FindStringSubmatch(l); m != nil {
				if !strings.Contains(readFile(t, "../../Makefile"), "\n"+m[1]+":") {
					t.Errorf("README names make %s: no such target", m[1])
				}
			}
		}
	},
	"production": func(t *testing.T, x readmeEnv) {
		// Run as written, with this test's binary, a temporary data
		// folder and a free port: the server refuses to start without
		// keys on 0.0.0.0, and answers the read key.
		lines := strings.Split(strings.TrimSpace(x.outs[0]), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "export ") || !strings.HasPrefix(lines[1], "bin/omnipick serve") || !strings.HasPrefix(lines[3], "curl ") {
			t.Fatalf("the production example changed shape: %q", lines)
		}
		port := freeAddr(t)[len("127.0.0.1:"):]
		data := filepath.Join(x.dir, "prod-data")
		serve := strings.NewReplacer("bin/omnipick", x.bin, "0.0.0.0:7070", "0.0.0.0:"+port, "/var/lib/omnipick", data).Replace(lines[1])
		curl := strings.ReplaceAll(lines[3], "localhost:7070", "127.0.0.1:"+port)
		script := lines[0] + "\n" + serve + " >" + filepath.Join(x.dir, "prod.log") + " 2>&1 &\npid=$!\ntrap 'kill $pid' EXIT\n" +
			"for i in $(seq 100); do curl -sf 127.0.0.1:" + port + "/healthz >/dev/null && break; sleep 0.1; done\n" +
			"curl -s -o /dev/null -w '%{http_code}\\n' 127.0.0.1:" + port + "/v1/picks\n" + curl + "\n"
		cmd := exec.Command("bash", "-e", "-c", script)
		cmd.Env = testEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the production example: %v\n%s\n%s", err, out, readFile(t, filepath.Join(x.dir, "prod.log")))
		}
		status, body, _ := strings.Cut(string(out), "\n")
		v := jsonValues(t, body)
		if status != "401" || len(v) != 1 || v[0].Customer != "sarah" || v[0].Error != "" { // an empty folder: no picks, but an answer
			t.Errorf("without a key: %s (want 401); with the read key: %s", status, body)
		}
	},
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadme runs the README's examples in order against a fresh
// `serve -demo`, then docs/tour.sh against another, checking what the
// README says each shows.
func TestReadme(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the README's examples need curl: apt-get install curl")
	}
	bin := omnipickBinary(t)
	examples := readmeExamples(t)
	dir := t.TempDir()
	p := startServe(t, bin, filepath.Join(dir, "data"), filepath.Join(dir, "serve.log"), "-demo")
	defer func() {
		p.signal(syscall.SIGTERM)
		p.wait(30 * time.Second)
	}()
	seen := map[string]bool{}
	for _, ex := range examples {
		if seen[ex.name] {
			t.Errorf("README.md:%d: check %q is used twice", ex.line, ex.name)
		}
		seen[ex.name] = true
		ok := t.Run(ex.name, func(t *testing.T) {
			if check := tourChecks[ex.name]; check != nil {
				check(t, jsonValues(t, runExample(t, ex, p.addr, dir)...))
				return
			}
			check := exampleChecks[ex.name]
			if check == nil {
				t.Fatalf("README.md:%d: no check named %q", ex.line, ex.name)
			}
			x := readmeEnv{bin: bin, addr: p.addr, dir: dir}
			switch ex.name {
			case "setup", "long-runs", "production": // not run as written: checked
				x.outs = []string{ex.body}
			default:
				x.outs = runExample(t, ex, p.addr, dir)
			}
			check(t, x)
		})
		if !ok {
			break // later examples build on earlier ones
		}
	}
	for name := range tourChecks {
		if !seen[name] {
			t.Errorf("the README has no example checked as %s", name)
		}
	}
	for name := range exampleChecks {
		if !seen[name] {
			t.Errorf("the README has no example checked as %s", name)
		}
	}
	// Whatever the tour showed, no channel shows Sarah what she bought.
	for _, q := range []string{"channel=web", "channel=app", "channel=ads", "channel=email", "channel=screen&location=store-berlin-1"} {
		var r reply
		if _, err := getJSON(http.DefaultClient, p.base+"/v1/picks?customer=sarah&k=20&"+q, &r); err != nil {
			t.Fatal(err)
		}
		wantNone(t, q, r, bought...)
	}

	t.Run("tour.sh", func(t *testing.T) {
		tour := readFile(t, tourPath)
		for _, ex := range examples {
			if strings.HasPrefix(ex.name, "tour-") && !strings.Contains(tour, strings.ReplaceAll(ex.body, "localhost:7070", "$O")) {
				t.Errorf("docs/tour.sh lacks the README's step %s (README.md:%d) as written", ex.name, ex.line)
			}
		}
		dir := t.TempDir()
		p := startServe(t, bin, filepath.Join(dir, "data"), filepath.Join(dir, "serve.log"), "-demo")
		defer func() {
			p.signal(syscall.SIGTERM)
			p.wait(30 * time.Second)
		}()
		cmd := exec.Command("bash", tourPath)
		cmd.Env = append(testEnv(), "OMNIPICK="+p.addr)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash docs/tour.sh: %v\n%s", err, out)
		}
		steps := regexp.MustCompile(`(?m)^== (\d+)\. .*$`).Split(string(out), -1)
		if len(steps) != 9 {
			t.Fatalf("docs/tour.sh printed %d steps, want 8:\n%s", len(steps)-1, out)
		}
		for i, s := range steps[1:] {
			name := fmt.Sprintf("tour-%d", i+1)
			t.Run(name, func(t *testing.T) { tourChecks[name](t, jsonValues(t, s)) })
		}
	})
}
