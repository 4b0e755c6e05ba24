// Package server wires sealsign-enclave: hardware root, entropy, attester,
// the party runtime and the host-facing listener.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	ecdsakeygen "github.com/bnb-chain/tss-lib/v2/ecdsa/keygen"
	golog "github.com/ipfs/go-log"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/party"
	"github.com/sealsign/sealsign/enclave/transport"
)

// SealingKeyLabel names the AES-256 sealing key on the party's token.
const SealingKeyLabel = "sealsign-sealing-key-v1"

// Options configure an enclave process.
type Options struct {
	Listen string // unix:PATH or vsock::PORT
	HSM    string // RFC 7512 PKCS#11 URI (hsm, dev and nitro parties)
	// TPM is a tpm party's TPM: a device path (/dev/tpmrm0) or
	// "simulator:SEEDFILE" for dev and tests. Exactly one of HSM and TPM.
	TPM string
	// TPMSealPCRs are further SHA-256 PCRs (e.g. 0,2,4,7: firmware, boot
	// loader, secure boot) the sealing and attestation policy includes
	// besides MeasurePCR.
	TPMSealPCRs []int
	// DevCACert and DevCAKey select the dev NSM (dev parties only).
	DevCACert, DevCAKey string
	PreParamsGoal       int
	PreParamsNoRefill   bool
	// InsecurePreParamsFixture loads public pre-parameter sets instead of
	// generating them (tests and dev demos only; see PoolConfig).
	InsecurePreParamsFixture     string
	FixtureStride, FixtureOffset int
	Log                          *slog.Logger
}

// Run starts the enclave and serves host connections until ctx ends.
// Configuration and hardware errors are returned before listening.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	// tss-lib logs protocol progress at info; keep it quiet and keep its
	// output (which can include message contents at debug) out of our logs.
	golog.SetLogLevel("tss-lib", "error")

	addr, err := transport.Parse(o.Listen)
	if err != nil {
		return err
	}
	hw, err := openHardware(o, o.Log)
	if err != nil {
		return err
	}
	defer hw.Close()
	pool := party.PoolConfig{Goal: o.PreParamsGoal, NoRefill: o.PreParamsNoRefill}
	if o.InsecurePreParamsFixture != "" {
		sets, err := loadFixture(o.InsecurePreParamsFixture, o.FixtureStride, o.FixtureOffset)
		if err != nil {
			return err
		}
		pool.InsecureFixture = sets
		o.Log.Warn("using PUBLIC pre-parameter fixtures: keys made here protect nothing", "file", o.InsecurePreParamsFixture, "sets", len(sets))
	}
	e := party.New(party.Config{
		Sealer:      hw.sealer,
		Epochs:      hw.epochs,
		Rand:        hw.rand,
		Attester:    hw.attester,
		Measurement: hw.measurement,
		Log:         o.Log,
		PreParams:   pool,
	})
	l, err := transport.Listen(addr)
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	o.Log.Info("enclave listening", "addr", addr.String(), "attests_as", hw.kind, "measurement", fmt.Sprintf("%x", hw.measurement))
	// One host connection at a time: a host that reconnects gets the same
	// enclave state (identity, shares, pool).
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("enclave: accept: %w", err)
		}
		conn := api.NewConn(c, e.Handlers())
		conn.OnBadFrame = func(err error) { o.Log.Warn("bad frame from host", "err", err) }
		e.AttachHost(conn)
		o.Log.Info("host connected")
		conn.Serve(ctx)
		o.Log.Info("host disconnected")
	}
}

func loadFixture(path string, stride, offset int) ([]*ecdsakeygen.LocalPreParams, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("enclave: pre-params fixture: %w", err)
	}
	var all []*ecdsakeygen.LocalPreParams
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("enclave: pre-params fixture %s: %w", path, err)
	}
	if stride <= 0 {
		stride = 1
	}
	var out []*ecdsakeygen.LocalPreParams
	for i := offset; i < len(all); i += stride {
		if all[i] == nil || !all[i].ValidateWithProof() {
			return nil, fmt.Errorf("enclave: pre-params fixture %s: set %d invalid", path, i)
		}
		out = append(out, all[i])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("enclave: pre-params fixture %s has no set at offset %d", path, offset)
	}
	return out, nil
}
