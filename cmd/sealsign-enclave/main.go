// Command sealsign-enclave is one party's enclave: the only process that
// sees a key share in plaintext. It speaks length-prefixed CBOR frames to its
// host over a unix socket (dev) or vsock (Nitro).
//
// Exit codes: 0 clean shutdown, 1 configuration or hardware error (the
// reason on stderr), 2 usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/sealsign/sealsign/enclave/server"
)

func main() {
	var o server.Options
	fs := flag.NewFlagSet("sealsign-enclave", flag.ContinueOnError)
	fs.StringVar(&o.Listen, "listen", "", "listen address: unix:PATH (dev) or vsock::PORT (Nitro)")
	fs.StringVar(&o.HSM, "hsm", "", "PKCS#11 URI of the party's token, e.g. pkcs11:token=party-a?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/path/pin")
	fs.StringVar(&o.TPM, "tpm", "", "a tpm party's TPM: a device such as /dev/tpmrm0, or simulator:SEEDFILE (dev and tests only); instead of --hsm")
	sealPCRs := fs.String("tpm-seal-pcrs", "", "with --tpm: further PCRs the seal and attestation policy include, e.g. 0,2,4,7")
	fs.StringVar(&o.DevCACert, "dev-ca-cert", "", "dev NSM root certificate (PEM); dev parties only")
	fs.StringVar(&o.DevCAKey, "dev-ca-key", "", "dev NSM root key (PEM); dev parties only")
	fs.IntVar(&o.PreParamsGoal, "preparams-pool", 2, "Paillier pre-parameter sets to keep ready")
	fs.BoolVar(&o.PreParamsNoRefill, "preparams-no-refill", false, "stop generating once the pool has been filled once (demos, benchmarks)")
	fs.StringVar(&o.InsecurePreParamsFixture, "insecure-preparams-fixture", "", "use PUBLIC pre-parameter sets from this JSON file (tests and demos only)")
	fs.IntVar(&o.FixtureStride, "fixture-stride", 1, "with the fixture: take every Nth set")
	fs.IntVar(&o.FixtureOffset, "fixture-offset", 0, "with the fixture: start at this set")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if o.Listen == "" || (o.HSM == "") == (o.TPM == "") {
		fmt.Fprintln(os.Stderr, "sealsign-enclave: --listen and exactly one of --hsm or --tpm are required")
		fs.Usage()
		os.Exit(2)
	}
	for _, f := range strings.FieldsFunc(*sealPCRs, func(r rune) bool { return r == ',' }) {
		i, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || i < 0 || i > 23 {
			fmt.Fprintf(os.Stderr, "sealsign-enclave: --tpm-seal-pcrs: %q is not a PCR index 0..23\n", f)
			os.Exit(2)
		}
		o.TPMSealPCRs = append(o.TPMSealPCRs, i)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "sealsign-enclave: bad --log-level %q\n", *level)
		os.Exit(2)
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("component", "enclave")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "sealsign-enclave:", err)
		os.Exit(1)
	}
}
