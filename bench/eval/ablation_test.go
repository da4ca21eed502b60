package eval

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/omnipick/omnipick/engine"
)

// ablations are the engine variants TestAblation compares with the
// defaults (the first), on the validation split: one signal or setting
// changed at a time.
func ablations() []struct {
	name string
	opts engine.Options
} {
	return []struct {
		name string
		opts engine.Options
	}{
		{"defaults", engine.Options{}},
		{"no siblings", engine.Options{SiblingWeight: -1}},
		{"sibling weight 0.5", engine.Options{SiblingWeight: 0.5}},
		{"sibling weight 2", engine.Options{SiblingWeight: 2}},
		{"sibling weight 3", engine.Options{SiblingWeight: 3}},
		{"relations popnorm 0.5", engine.Options{RelatedPopNorm: 0.5}},
		{"learned blend", engine.Options{Blend: true}},
		{"neighbours", engine.Options{NeighbourWeight: 4}},
		{"neighbours w1", engine.Options{NeighbourWeight: 1}},
		{"repeat category 0.05", engine.Options{RepeatCategoryWeight: 0.05}},
		{"repeat category 0.1", engine.Options{RepeatCategoryWeight: 0.1}},
		{"repeat category 0.25", engine.Options{RepeatCategoryWeight: 0.25}},
		{"repeat category 0.5", engine.Options{RepeatCategoryWeight: 0.5}},
		{"repeat category 1", engine.Options{RepeatCategoryWeight: 1}},
		{"repeat category -0.1", engine.Options{RepeatCategoryWeight: -0.1}},
		// Cost levers (issue 13): fewer relation updates per event, fewer
		// candidates per web call.
		{"event anchors 32", engine.Options{EventAnchors: 32}},
		{"event anchors 16", engine.Options{EventAnchors: 16}},
		{"related per anchor 8", engine.Options{RelatedPerAnchor: 8}},
		{"anchors 24", engine.Options{Anchors: 24}},
		{"event anchors 32 + related 8", engine.Options{EventAnchors: 32, RelatedPerAnchor: 8}},
	}
}

// TestAblation scores each variant of ablations on every set's validation
// split, with its paired bootstrap difference to the defaults. It runs
// only with OMNIPICK_ABLATE=1 (it replays every set once per variant):
//
//	OMNIPICK_ABLATE=1 go test ./bench/eval -run TestAblation -v -timeout 30m
//
// OMNIPICK_ABLATE_FOLD=2 scores the earlier validation window (a second
// fold; Options.Fold), OMNIPICK_ABLATE_FOLD=3 a window as long as
// holdout_dev's. OMNIPICK_ABLATE_ONLY=name,name runs only those variants (and the
// defaults); OMNIPICK_ABLATE_SETS=hm,taobao only those sets.
//
// OMNIPICK_ABLATE_SPLIT=dev reads holdout_dev instead: once per candidate
// change, to confirm what validation decided (docs/ranking.md).
func TestAblation(t *testing.T) {
	if os.Getenv("OMNIPICK_ABLATE") == "" {
		t.Skip("set OMNIPICK_ABLATE=1 to run the ablation on the validation split")
	}
	dir := realDataDir(t)
	split := SplitValidation
	if s := os.Getenv("OMNIPICK_ABLATE_SPLIT"); s != "" {
		split = Split(s)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%-14s %-22s %7s %-17s %7s %-17s %-19s %-19s\n", "set", "variant", "HR@12", "95% CI", "MAP@12", "95% CI", "dHR vs defaults", "dMAP vs defaults")
	for _, set := range SetNames() {
		if sets := os.Getenv("OMNIPICK_ABLATE_SETS"); sets != "" && !slices.Contains(strings.Split(sets, ","), set) {
			continue
		}
		var methods []Recommender
		for _, a := range ablations() {
			if a.name == "defaults" || selected(a.name) {
				methods = append(methods, NewEngine(a.name, a.opts))
			}
		}
		fold, _ := strconv.Atoi(os.Getenv("OMNIPICK_ABLATE_FOLD"))
		rep, err := Run(set, dir, "", 12, methods, Options{Split: split, Fold: fold})
		if err != nil {
			t.Fatal(err)
		}
		base := rep.Methods[0].scores
		for _, m := range rep.Methods {
			dHR := PairedBootstrap(m.scores.hits, base.hits, DefaultBootstrap, bootstrapSeed)
			dMAP := PairedBootstrap(m.scores.aps, base.aps, DefaultBootstrap, bootstrapSeed)
			fmt.Fprintf(&out, "%-14s %-22s %.4f %s %.4f %s %+.4f %s %+.4f %s\n", set, m.Method,
				m.HitRate, m.HitRateCI, m.MAP, m.MAPCI,
				m.HitRate-rep.Methods[0].HitRate, dHR, m.MAP-rep.Methods[0].MAP, dMAP)
		}
	}
	t.Logf("%s split, k = 12\n%s", split, out.String())
}

// selected reports whether variant name is asked for by
// OMNIPICK_ABLATE_ONLY (every variant when it is unset).
func selected(name string) bool {
	only := os.Getenv("OMNIPICK_ABLATE_ONLY")
	return only == "" || slices.Contains(strings.Split(only, ","), name)
}
