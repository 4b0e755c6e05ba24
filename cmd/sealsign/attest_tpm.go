package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"sort"

	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/enclave/api"
)

// attestTPMReport is fetch's JSON for a tpm party: TPM evidence has no
// certificate chain, only a quote by the AK the manifest pins.
type attestTPMReport struct {
	Valid    bool              `json:"valid"`
	Verdict  string            `json:"verdict"`
	Error    *attestErrorJSON  `json:"error,omitempty"`
	Input    *attestInput      `json:"input,omitempty"`
	Party    string            `json:"party"`
	Kind     string            `json:"kind"`
	AK       string            `json:"ak"`
	PCRs     map[string]string `json:"pcrs,omitempty"`
	Clock    *tpmClockJSON     `json:"tpm_clock,omitempty"`
	Nonce    string            `json:"nonce"`
	UserData string            `json:"user_data"`
	// Checks name what was verified, in order.
	Checks []string `json:"checks"`
}

type tpmClockJSON struct {
	ClockMS      uint64 `json:"clock_ms"`
	ResetCount   uint32 `json:"reset_count"`
	RestartCount uint32 `json:"restart_count"`
	Safe         bool   `json:"safe"`
}

// attestFetchTPM verifies a tpm party's evidence with the same verifier
// the enclaves use (peer.Verify) under the manifest's policy for it.
func attestFetchTPM(m *api.Manifest, id string, doc []byte, exp peer.Expect, asJSON bool, in *attestInput, stdout, stderr io.Writer) int {
	mp, _ := m.Party(id)
	rep := &attestTPMReport{Verdict: "invalid", Input: in, Party: id, Kind: peer.KindTPM, AK: mp.AK,
		Nonce: hex.EncodeToString(exp.Nonce), UserData: hex.EncodeToString(exp.UserData),
		Checks: []string{"ak pinned by the manifest", "quote signature", "pcr digest", "pinned pcrs", "nonce", "user_data", "public_key"}}
	pol, err := m.AttestationPolicy(id)
	var v *peer.Verified
	if err == nil {
		v, err = peer.Verify(doc, pol, exp, attestNow(), 0)
	}
	if err != nil {
		rep.Error = &attestErrorJSON{Message: err.Error()}
		rep.Checks = nil
		if asJSON {
			attestPrintJSON(stdout, rep)
		}
		fmt.Fprintf(stderr, "sealsign: party %q: %v\n", id, err)
		return 1
	}
	rep.Valid, rep.Verdict = true, "valid"
	rep.PCRs = map[string]string{}
	var idx []int
	for i, val := range v.PCRs {
		rep.PCRs[fmt.Sprint(i)] = hex.EncodeToString(val)
		idx = append(idx, int(i))
	}
	sort.Ints(idx)
	c := v.TPMClock
	rep.Clock = &tpmClockJSON{ClockMS: c.Clock, ResetCount: c.ResetCount, RestartCount: c.RestartCount, Safe: c.Safe}
	if asJSON {
		attestPrintJSON(stdout, rep)
		return 0
	}
	fmt.Fprintf(stdout, "valid: TPM evidence verified under the manifest's policy\n")
	fmt.Fprintf(stdout, "  party        %s (kind tpm)\n", id)
	fmt.Fprintf(stdout, "  ak           %s\n", mp.AK)
	for _, i := range idx {
		fmt.Fprintf(stdout, "  pcr%-2d        %s\n", i, rep.PCRs[fmt.Sprint(i)])
	}
	fmt.Fprintf(stdout, "  tpm clock    %d ms, reset %d, restart %d\n", c.Clock, c.ResetCount, c.RestartCount)
	fmt.Fprintf(stdout, "  nonce        %s (fresh, ours)\n", rep.Nonce)
	fmt.Fprintf(stdout, "  user_data    %s (the manifest hash)\n", rep.UserData)
	return 0
}
