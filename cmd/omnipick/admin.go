package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// adminServer serves net/http/pprof on its own listener, apart from the
// API: profiles reveal internals and a CPU profile costs the process, so it
// is off unless -admin-addr is set, and loopback only (no keys guard it;
// reach it with an SSH tunnel). See docs/operations.md, "Profiling".
type adminServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// checkAdminAddr refuses an admin address other machines could reach: its
// host must be a loopback IP or "localhost" (checked again once listening,
// since "localhost" may resolve to anything).
func checkAdminAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-admin-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-admin-addr %q: the profiling listener has no authentication, so it only listens on a loopback address such as 127.0.0.1:6060 (reach it from elsewhere with an SSH tunnel)", addr)
	}
	return nil
}

// adminMux registers the pprof handlers on a fresh mux. Importing
// net/http/pprof also registers them on http.DefaultServeMux, which
// nothing in omnipick serves.
func adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, block, mutex, allocs
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// startAdmin listens on addr and serves pprof in the background.
func startAdmin(addr string, log *slog.Logger) (*adminServer, error) {
	if err := checkAdminAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on -admin-addr %q: %w", addr, err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("-admin-addr %q: listening on %s, which is not a loopback address", addr, ln.Addr())
	}
	a := &adminServer{
		// No write timeout: a CPU profile or trace streams for as many
		// seconds as asked (?seconds=30).
		srv:  &http.Server{Handler: adminMux(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "err", err)
		}
	}()
	log.Info("profiling on the admin listener", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return a, nil
}

// Stop closes the listener and connections at once: a profile being taken
// is of no use once the process stops. A nil a (no -admin-addr) is fine.
func (a *adminServer) Stop() error {
	if a == nil {
		return nil
	}
	err := a.srv.Close()
	<-a.done
	if err != nil {
		return fmt.Errorf("cannot stop the admin listener: %w", err)
	}
	return nil
}
