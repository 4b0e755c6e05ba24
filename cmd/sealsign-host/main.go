// Command sealsign-host runs beside one party's enclave: it launches (dev)
// or connects to the enclave, stores sealed blobs, serves the client HTTP
// API and relays encrypted protocol messages to peer hosts.
//
// Exit codes: 0 clean shutdown, 1 error (including the enclave going away;
// the reason on stderr), 2 usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sealsign/sealsign/host/server"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var o server.RunOptions
	var peers, args, env multiFlag
	fs := flag.NewFlagSet("sealsign-host", flag.ContinueOnError)
	fs.StringVar(&o.PartyID, "party", "", "this party's id (as in the manifest)")
	fs.StringVar(&o.ManifestPath, "manifest", "", "cluster manifest (JSON)")
	fs.StringVar(&o.StorePath, "store", "", "embedded store file (bbolt)")
	fs.StringVar(&o.AuditStore, "audit-store", "", "keep the audit log in PostgreSQL: postgres://USER@HOST:PORT/DB (password in PGPASSWORD or ~/.pgpass, not the URL); default: the embedded store")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:0", "HTTP API address")
	fs.Var(&peers, "peer", "peer host as ID=URL (repeatable)")
	fs.StringVar(&o.Enclave, "enclave", "", "enclave address: unix:PATH (dev) or vsock:CID:PORT")
	fs.StringVar(&o.LaunchEnclave, "launch-enclave", "", "dev: start this sealsign-enclave binary")
	fs.Var(&args, "enclave-arg", "dev: argument for the launched enclave (repeatable)")
	fs.Var(&env, "enclave-env", "dev: KEY=VALUE for the launched enclave's environment (repeatable)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if o.PartyID == "" || o.ManifestPath == "" || o.StorePath == "" || o.Enclave == "" {
		fmt.Fprintln(os.Stderr, "sealsign-host: --party, --manifest, --store and --enclave are required")
		fs.Usage()
		os.Exit(2)
	}
	if o.AuditStore != "" && !strings.HasPrefix(o.AuditStore, "postgres://") && !strings.HasPrefix(o.AuditStore, "postgresql://") {
		fmt.Fprintln(os.Stderr, "sealsign-host: --audit-store: want a postgres:// URL (omit the flag for the embedded store)")
		os.Exit(2)
	}
	o.Peers = map[string]string{}
	for _, p := range peers {
		id, url, ok := strings.Cut(p, "=")
		if !ok || id == "" || url == "" {
			fmt.Fprintf(os.Stderr, "sealsign-host: --peer %q: want ID=URL\n", p)
			os.Exit(2)
		}
		o.Peers[id] = strings.TrimRight(url, "/")
	}
	o.EnclaveArgs, o.EnclaveEnv = args, env
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "sealsign-host: bad --log-level %q\n", *level)
		os.Exit(2)
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("component", "host", "party", o.PartyID)
	o.EnclaveLog = os.Stderr
	o.Ready = func(addr string) {
		fmt.Printf("sealsign-host: party %s ready on http://%s\n", o.PartyID, addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "sealsign-host:", err)
		os.Exit(1)
	}
}
