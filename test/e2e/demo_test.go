package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// TestDemoJSON runs `sealsign demo --json` as a user would and checks every
// signature it prints with verifiers independent of tss-lib (and of the
// demo's own verification code).
func TestDemoJSON(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir(t), "sealsign"), "demo", "--json", "--insecure-preparams-fixture", fixture(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sealsign demo --json: %v\n%s", err, stderr.String())
	}
	var res struct {
		ECDSA struct {
			PK         string `json:"public_key"`
			D          string `json:"digest"`
			Sig        string `json:"signature"`
			RecoveryID int    `json:"recovery_id"`
		} `json:"ecdsa"`
		EdDSA struct {
			PK  string `json:"public_key"`
			Msg string `json:"message"`
			Sig string `json:"signature"`
		} `json:"eddsa"`
		Restart   bool             `json:"restart_signature_ok"`
		TwoOf3    bool             `json:"two_of_three_ok"`
		Refused   bool             `json:"changed_measurement_refused"`
		RefusalMs string           `json:"refusal_message"`
		Timings   map[string]int64 `json:"timings_ms"`
		// The tpm party (b by default) restarted with the rogue build.
		TPMParty      string `json:"tpm_party"`
		TPMRefused    bool   `json:"tpm_changed_measurement_refused"`
		TPMUnseal     bool   `json:"tpm_unseal_refused"`
		TPMRefusalMsg string `json:"tpm_refusal_message"`
		TPMUnsealMsg  string `json:"tpm_unseal_message"`
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("demo output is not the documented JSON object: %v", err)
	}
	unhex := func(s string, n int) []byte {
		b, err := hex.DecodeString(s)
		if err != nil || (n > 0 && len(b) != n) {
			t.Fatalf("%q: want %d hex bytes", s, n)
		}
		return b
	}
	pk, err := secp256k1.ParsePubKey(unhex(res.ECDSA.PK, 33))
	if err != nil {
		t.Fatal(err)
	}
	sig := unhex(res.ECDSA.Sig, 64)
	digest := unhex(res.ECDSA.D, 32)
	compact := append([]byte{byte(27 + 4 + res.ECDSA.RecoveryID)}, sig...)
	rec, _, err := secpecdsa.RecoverCompact(compact, digest)
	if err != nil || !rec.IsEqual(pk) {
		t.Fatalf("ecdsa signature/recovery id do not recover the public key: %v", err)
	}
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:])
	if s.IsOverHalfOrder() {
		t.Fatal("ecdsa signature is not low-S")
	}
	if !ed25519.Verify(unhex(res.EdDSA.PK, 32), unhex(res.EdDSA.Msg, 0), unhex(res.EdDSA.Sig, 64)) {
		t.Fatal("eddsa signature does not verify under crypto/ed25519")
	}
	if !res.Restart || !res.TwoOf3 || !res.Refused || !strings.Contains(res.RefusalMs, "pcr0 mismatch") {
		t.Fatalf("demo outcome flags: %+v", res)
	}
	// Party b sealed with its TPM and signed (after the restart, with c
	// stopped); with another binary its peers refuse its quote and its TPM
	// refuses to unseal.
	if res.TPMParty != "b" || !res.TPMRefused || !strings.Contains(res.TPMRefusalMsg, `refusing peer "b": tpm: pcr23 mismatch`) ||
		!res.TPMUnseal || !strings.Contains(res.TPMUnsealMsg, "pcr policy failed: pcr 23") {
		t.Fatalf("demo tpm outcome: party %q refused %v (%s) unseal refused %v (%s)", res.TPMParty, res.TPMRefused, res.TPMRefusalMsg, res.TPMUnseal, res.TPMUnsealMsg)
	}
	for _, k := range []string{"keygen_ecdsa", "keygen_eddsa", "sign_ecdsa", "sign_eddsa", "total"} {
		if res.Timings[k] <= 0 {
			t.Fatalf("timing %q missing: %v", k, res.Timings)
		}
	}
}
