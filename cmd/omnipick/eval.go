package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/omnipick/omnipick/bench/eval"
	"github.com/omnipick/omnipick/engine"
)

const evalUsage = `usage: omnipick eval [flags]

Replays the train split of real data sets into the engine and the
baselines (popularity, last-day popularity, co-occurrence), asks each for
k picks per holdout customer as of the cut, and prints HitRate@k, MAP@k,
Recall@k and coverage per set and method. See bench/eval's package doc.

flags:
`

// runEval is "omnipick eval".
func runEval(args []string) error {
	fs := flag.NewFlagSet("omnipick eval", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), evalUsage)
		fs.PrintDefaults()
	}
	set := fs.String("set", "all", "data set: "+strings.Join(eval.SetNames(), ", ")+" or all")
	dataDir := fs.String("data", "../shared/data", "directory holding the data sets")
	holdout := fs.String("holdout", "", "holdout file (default: the set's holdout_dev/holdout_purchases.csv); needs a single -set")
	k := fs.Int("k", 12, "picks per customer")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	customers := fs.Int("customers", 0, "score at most this many customers per set, a fixed hash sample (0: all)")
	events := fs.Int("events", 0, "feed only the latest N train events per set (0: all)")
	proposed := fs.Bool("proposed", true, "also run the engine with eval.ProposedOptions, when they differ from the engine's defaults")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sets := []string{*set}
	if *set == "all" {
		sets = eval.SetNames()
	} else if !slices.Contains(eval.SetNames(), *set) {
		return fmt.Errorf("unknown set %q (have %s, all)", *set, strings.Join(eval.SetNames(), ", "))
	}
	if *holdout != "" && len(sets) > 1 {
		return errors.New("-holdout needs a single -set: holdout files differ per set")
	}
	if *k <= 0 || *k > engine.MaxK {
		return fmt.Errorf("-k must be in 1..%d, got %d", engine.MaxK, *k)
	}
	if *customers < 0 || *events < 0 {
		return errors.New("-customers and -events must not be negative")
	}

	opts := eval.Options{MaxCustomers: *customers, MaxTrainEvents: *events}
	var reports []eval.Report
	for _, s := range sets {
		methods := []eval.Recommender{eval.NewEngine("engine", engine.Options{})}
		if *proposed && !eval.ProposedIsDefault() {
			methods = append(methods, eval.NewEngine("engine-proposed", eval.ProposedOptions()))
		}
		methods = append(methods, eval.Baselines()...)
		rep, err := eval.Run(s, *dataDir, *holdout, *k, methods, opts)
		if err != nil {
			return err
		}
		reports = append(reports, rep)
		if !*asJSON {
			fmt.Fprintf(os.Stderr, "%s done\n", s)
		}
	}
	var w io.Writer = os.Stdout
	if *asJSON {
		return eval.WriteJSON(w, reports...)
	}
	return eval.WriteTable(w, reports...)
}
