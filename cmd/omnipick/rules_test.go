package main

import (
	"testing"
	"time"

	"github.com/omnipick/omnipick/engine"
)

func TestParseFrequencyCaps(t *testing.T) {
	tests := []struct {
		in       string
		ads, eml engine.FrequencyCap
		wantErr  bool
	}{
		{in: "", ads: engine.FrequencyCap{}, eml: engine.FrequencyCap{}},
		{in: "3/48h", ads: engine.FrequencyCap{Max: 3, Window: 48 * time.Hour}, eml: engine.FrequencyCap{Max: 3, Window: 48 * time.Hour}},
		{in: "2/1d,email=5/7d", ads: engine.FrequencyCap{Max: 2, Window: 24 * time.Hour}, eml: engine.FrequencyCap{Max: 5, Window: 7 * 24 * time.Hour}},
		{in: "3", wantErr: true},
		{in: "0/1h", wantErr: true},
		{in: "3/-1h", wantErr: true},
		{in: "fax=3/1h", wantErr: true},
		{in: "3/soon", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var o engine.Options
			err := parseFrequencyCaps(tt.in, &o)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (o.FrequencyCaps[engine.ChannelAds] != tt.ads || o.FrequencyCaps[engine.ChannelEmail] != tt.eml) {
				t.Fatalf("ads %+v email %+v", o.FrequencyCaps[engine.ChannelAds], o.FrequencyCaps[engine.ChannelEmail])
			}
		})
	}
}

func TestParseRepurchase(t *testing.T) {
	tests := []struct {
		in      string
		want    []engine.RepurchaseWindow
		wantErr bool
	}{
		{in: ""},
		{in: "beauty/=30d,grocery/coffee=168h", want: []engine.RepurchaseWindow{{Prefix: "beauty/", Window: 30 * 24 * time.Hour}, {Prefix: "grocery/coffee", Window: 168 * time.Hour}}},
		{in: "beauty/", wantErr: true},
		{in: "=7d", wantErr: true},
		{in: "beauty/=0d", wantErr: true},
		{in: "beauty/=xd", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRepurchase(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}
