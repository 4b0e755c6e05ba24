package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sealsign/sealsign/enclave/transport"
	"github.com/sealsign/sealsign/host/launcher"
	"github.com/sealsign/sealsign/host/store"
)

// RunOptions configure a sealsign-host process.
type RunOptions struct {
	PartyID      string
	ManifestPath string
	StorePath    string
	// AuditStore, when set, is a postgres:// URL: the audit log is kept in
	// that PostgreSQL database instead of the embedded store.
	AuditStore string
	Listen     string            // host:port for the HTTP API
	Peers      map[string]string // party → base URL
	Enclave    string            // unix:PATH or vsock:CID:PORT
	// LaunchEnclave, when set, starts this dev enclave binary with
	// EnclaveArgs and EnclaveEnv, logging its output to EnclaveLog.
	LaunchEnclave string
	EnclaveArgs   []string
	EnclaveEnv    []string
	EnclaveLog    io.Writer
	Log           *slog.Logger
	// Ready, if set, is called with the API's listening address.
	Ready func(addr string)
}

// ErrEnclaveGone is returned by Run when the enclave process or connection ends.
var ErrEnclaveGone = errors.New("server: enclave went away")

// Run serves until ctx ends or the enclave goes away.
func Run(ctx context.Context, o RunOptions) error {
	manifest, err := os.ReadFile(o.ManifestPath)
	if err != nil {
		return fmt.Errorf("server: manifest: %w", err)
	}
	st, err := store.Open(o.StorePath)
	if err != nil {
		return err
	}
	defer st.Close()
	cfg := Config{PartyID: o.PartyID, Manifest: manifest, Store: st, Peers: o.Peers, Log: o.Log}
	if o.AuditStore != "" {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		pg, err := store.OpenPostgres(octx, o.AuditStore, o.PartyID)
		cancel()
		if err != nil {
			return err
		}
		defer pg.Close()
		cfg.Audit = pg
		if o.Log != nil {
			o.Log.Info("audit log in postgres", "at", pg.Location())
		}
	}
	srv, err := New(cfg)
	if err != nil {
		return err
	}
	addr, err := transport.Parse(o.Enclave)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var rwc io.ReadWriteCloser
	var proc *launcher.Process
	if o.LaunchEnclave != "" {
		proc, err = launcher.Start(o.LaunchEnclave, append([]string{"--listen", o.Enclave}, o.EnclaveArgs...), o.EnclaveEnv, o.EnclaveLog)
		if err != nil {
			return err
		}
		defer proc.Stop()
		rwc, err = proc.WaitDial(dctx, addr)
	} else {
		rwc, err = transport.Dial(dctx, addr)
	}
	if err != nil {
		return err
	}
	if err := srv.AttachEnclave(ctx, rwc); err != nil {
		if proc != nil {
			select {
			case <-proc.Exited():
				return proc.Failure()
			case <-time.After(200 * time.Millisecond):
			}
		}
		return err
	}
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", o.Listen, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	defer hs.Close()
	if o.Ready != nil {
		o.Ready(l.Addr().String())
	}
	var exited <-chan struct{}
	if proc != nil {
		exited = proc.Exited()
	}
	select {
	case <-ctx.Done():
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		hs.Shutdown(sctx)
		return nil
	case <-srv.EnclaveDone():
		if proc != nil {
			select {
			case <-proc.Exited():
				return fmt.Errorf("%w: %v", ErrEnclaveGone, proc.Failure())
			case <-time.After(time.Second):
			}
		}
		return ErrEnclaveGone
	case <-exited:
		return fmt.Errorf("%w: %v", ErrEnclaveGone, proc.Failure())
	}
}
