package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/omnipick/omnipick/engine"
)

// parseFrequencyCaps reads -frequency-cap: "3/48h" for every channel, or a
// default followed by per-channel overrides, "3/48h,email=5/7d". An item
// shown Max times within the window (on any channel) is demoted on the
// channel asking.
func parseFrequencyCaps(s string, opts *engine.Options) error {
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, spec, per := strings.Cut(item, "=")
		if !per {
			name, spec = "", item
		}
		n, win, ok := strings.Cut(spec, "/")
		max, err := strconv.Atoi(n)
		if !ok || err != nil || max < 1 {
			return fmt.Errorf("-frequency-cap %q: want COUNT/WINDOW such as 3/48h, optionally CHANNEL=COUNT/WINDOW", item)
		}
		d, err := parseDays(win)
		if err != nil || d <= 0 {
			return fmt.Errorf("-frequency-cap %q: bad window %q (a Go duration, or days as 7d)", item, win)
		}
		c := engine.FrequencyCap{Max: max, Window: d}
		if name == "" {
			for i := range opts.FrequencyCaps {
				opts.FrequencyCaps[i] = c
			}
			continue
		}
		ch, ok := engine.ParseChannel(name)
		if !ok {
			return fmt.Errorf("-frequency-cap %q: unknown channel %q (ads, email, screen, web, app)", item, name)
		}
		opts.FrequencyCaps[ch] = c
	}
	return nil
}

// parseRepurchase reads -repurchase: "beauty/=30d,grocery/=7d", category
// prefixes whose bought items may come back after the window.
func parseRepurchase(s string) ([]engine.RepurchaseWindow, error) {
	var out []engine.RepurchaseWindow
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		prefix, win, ok := strings.Cut(item, "=")
		d, err := parseDays(win)
		if !ok || strings.Trim(prefix, "/") == "" || err != nil || d <= 0 {
			return nil, fmt.Errorf("-repurchase %q: want CATEGORY_PREFIX=WINDOW such as beauty/=30d", item)
		}
		out = append(out, engine.RepurchaseWindow{Prefix: prefix, Window: d})
	}
	return out, nil
}

// parseDays is time.ParseDuration that also takes whole days, "7d".
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("bad days %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
