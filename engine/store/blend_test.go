package store

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/omnipick/omnipick/engine"
	"github.com/omnipick/omnipick/engine/wal"
)

// TestBlendSurvivesRestart: the learned blend's weights are state. After a
// snapshot, more writes and a restart (the snapshot loaded, the log after
// it replayed), or a crash with no snapshot (the whole log replayed), they
// are the same bit for bit as the live engine's and as a fresh engine's
// fed the same records.
func TestBlendSurvivesRestart(t *testing.T) {
	blendOn := func(o *Options) {
		o.Engine.Blend, o.Engine.BlendMinPurchases = true, 10
	}
	for _, snapshot := range []bool{true, false} {
		name := "log only"
		if snapshot {
			name = "snapshot and log"
		}
		t.Run(name, func(t *testing.T) {
			fs := wal.NewMemFS()
			s, _ := openMem(t, fs, blendOn)
			all := catalog(30)
			write(t, s, all)
			rng := rand.New(rand.NewPCG(3, 3))
			ts := t0.UnixMilli()
			var mu sync.Mutex
			for i := range 80 {
				b := randomBatch(rng, 30, &ts, &mu)
				write(t, s, b)
				all = append(all, b...)
				if snapshot && i == 40 {
					if _, err := s.Snapshot(); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := s.Engine().Blend()
			if want.Steps < 10 {
				t.Fatalf("the blend learned from %d purchases only", want.Steps)
			}
			s2, info := openMem(t, fs.CrashClone(), blendOn)
			defer s2.Close()
			if snapshot == (info.Snapshot == "") {
				t.Fatalf("recovery %+v", info)
			}
			ro := Options{Engine: engineOpts()}
			blendOn(&ro)
			ref := engine.New(ro.Engine)
			for i := range all {
				r := all[i]
				ref.Apply(&r)
			}
			for _, got := range []engine.BlendState{s2.Engine().Blend(), ref.Blend()} {
				if !slices.Equal(got.Weights, want.Weights) || got.Steps != want.Steps {
					t.Fatalf("blend %+v, want %+v", got, want)
				}
			}
		})
	}
}
