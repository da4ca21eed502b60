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
baselines, asks each for k picks per holdout customer as of the cut, and
prints HitRate@k, MAP@k (with 95% bootstrap intervals over customers),
Recall@k and coverage per set and method, and the engine's difference to
the best baseline with a paired bootstrap interval. -split validation
scores a split carved from train by time: tune and decide there; -split
dev reads holdout_dev, to confirm. See bench/eval's package doc and
docs/ranking.md.

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
	split := fs.String("split", string(eval.SplitDev), "validation: learn from train before the set's validation cut and score the train purchases after it (tune and decide here); dev: learn from all of train and score the holdout file (confirm once per change)")
	holdout := fs.String("holdout", "", "holdout file (default: the set's holdout_dev/holdout_purchases.csv); needs a single -set and -split dev")
	fold := fs.Int("fold", 1, "with -split validation: 1, the set's validation window; 2, an earlier window of train (a second fold); 3, a window as long as holdout_dev's, ending where train ends")
	boot := fs.Int("bootstrap", eval.DefaultBootstrap, "bootstrap resamples behind the 95% intervals (0: none)")
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
	if !slices.Contains(eval.Splits(), eval.Split(*split)) {
		return fmt.Errorf("unknown -split %q (have validation, dev)", *split)
	}
	if *holdout != "" && eval.Split(*split) != eval.SplitDev {
		return errors.New("-holdout needs -split dev: validation targets come from train")
	}
	if *fold < 1 || *fold > 3 || (*fold > 1 && eval.Split(*split) != eval.SplitValidation) {
		return errors.New("-fold must be 1, or 2 or 3 with -split validation")
	}
	if *boot == 0 {
		*boot = -1 // eval.Options: negative means none
	}
	if *customers < 0 || *events < 0 || *boot < -1 {
		return errors.New("-customers, -events and -bootstrap must not be negative")
	}

	opts := eval.Options{MaxCustomers: *customers, MaxTrainEvents: *events, Split: eval.Split(*split), Bootstrap: *boot, Fold: *fold}
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
