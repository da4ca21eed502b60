package api_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/omnipick/omnipick/api"
	"github.com/omnipick/omnipick/engine"
)

// TestStopDoesNotWaitForSilentConnections: a client that connects and
// never sends a byte must not hold shutdown until the read timeout.
func TestStopDoesNotWaitForSilentConnections(t *testing.T) {
	srv, err := api.New(api.Options{Addr: "127.0.0.1:0", Engine: engine.New(engine.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(100 * time.Millisecond) // let the server accept it
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v after %v", err, time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Stop took %v with a silent connection open", d)
	}
}
