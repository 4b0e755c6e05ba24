package peer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/attestation"
	"github.com/sealsign/sealsign/attestation/devnsm"
	"github.com/sealsign/sealsign/attestation/tpm"
	hsmtpm "github.com/sealsign/sealsign/hsm/tpm"
)

func TestVerifyDevDocument(t *testing.T) {
	now := time.Now()
	ca, err := devnsm.NewCA(rand.Reader, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	pcr0 := sha512.Sum384([]byte("enclave binary"))
	nsm, err := devnsm.New(ca, "dev-module", map[uint][]byte{0: pcr0[:]}, rand.Reader, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	doc, err := nsm.Attest([]byte("identity"), []byte("manifest hash"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pol := Policy{Kind: KindDev, PCRs: map[uint][]byte{0: pcr0[:]}, DevRoots: []*x509.Certificate{ca.Cert()}}
	v, err := Verify(doc, pol, Expect{UserData: []byte("manifest hash")}, now, time.Hour)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.Kind != KindDev || !bytes.Equal(v.PublicKey, []byte("identity")) || v.TPMClock != nil || v.Time.IsZero() {
		t.Fatalf("verified %+v", v)
	}
	if i, m := Measurement(v, pol); i != 0 || !bytes.Equal(m, pcr0[:]) {
		t.Fatalf("Measurement = pcr%d %x", i, m)
	}

	other := sha512.Sum384([]byte("another binary"))
	for _, tt := range []struct {
		name string
		pol  Policy
		exp  Expect
		at   time.Time
		want string
		is   error
	}{
		{"other measurement", Policy{Kind: KindDev, PCRs: map[uint][]byte{0: other[:]}, DevRoots: pol.DevRoots}, Expect{}, now, "pcr0 mismatch", attestation.ErrMeasurement},
		{"no dev roots", Policy{Kind: KindDev, PCRs: pol.PCRs}, Expect{}, now, "names none", nil},
		{"dev document presented as nitro", Policy{Kind: KindNitro, PCRs: pol.PCRs}, Expect{}, now, "chain", attestation.ErrChain},
		{"other manifest", pol, Expect{UserData: []byte("another manifest")}, now, "user_data mismatch", attestation.ErrBinding},
		{"too old", pol, Expect{}, now.Add(2 * time.Hour), "", attestation.ErrExpired},
		{"tpm policy", Policy{Kind: KindTPM, PCRs: pol.PCRs}, Expect{}, now, "attestation key pinned", nil},
		{"hsm kind", Policy{Kind: KindHSM}, Expect{}, now, "declare them as kind \"tpm\"", nil},
		{"no kind", Policy{}, Expect{}, now, "names no party kind", nil},
		{"unknown kind", Policy{Kind: "sgx"}, Expect{}, now, "unknown party kind \"sgx\"", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Verify(doc, tt.pol, tt.exp, tt.at, time.Hour)
			if err == nil || v != nil {
				t.Fatalf("Verify = %v, %v; want an error", v, err)
			}
			if !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("error %q; want it to contain %q and match %v", err, tt.want, tt.is)
			}
		})
	}
}

func TestVerifyTPMEvidence(t *testing.T) {
	tp, err := hsmtpm.OpenSimulator(filepath.Join(t.TempDir(), "sim.seed"))
	if err != nil {
		t.Fatalf("TPM simulator: %v", err)
	}
	defer tp.Close()
	measurement := sha512.Sum384([]byte("enclave binary"))
	if err := tp.ExtendPCR(23, measurement[:]); err != nil {
		t.Fatal(err)
	}
	ak, err := tpm.NewAK(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	att, err := tpm.NewAttester(ak, []int{23})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := att.Attest([]byte("identity"), []byte("manifest hash"), []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	pinned := hsmtpm.ExpectedPCR(measurement[:])
	pol := Policy{Kind: KindTPM, PCRs: map[uint][]byte{23: pinned}, AKPublic: ak.Public()}
	v, err := Verify(ev, pol, Expect{Nonce: []byte("nonce"), UserData: []byte("manifest hash"), PublicKey: []byte("identity")}, time.Now(), time.Minute)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.Kind != KindTPM || v.TPMClock == nil || !v.Time.IsZero() || !bytes.Equal(v.PCRs[23], pinned) {
		t.Fatalf("verified %+v", v)
	}
	if i, m := Measurement(v, pol); i != 23 || !bytes.Equal(m, pinned) {
		t.Fatalf("Measurement = pcr%d %x", i, m)
	}

	otherAK := pol
	otherAK.AKPublic = mustP256(t)
	otherPCR := pol
	otherPCR.PCRs = map[uint][]byte{23: hsmtpm.ExpectedPCR([]byte("rogue"))}
	for _, tt := range []struct {
		name string
		pol  Policy
		exp  Expect
		raw  []byte
		want string
	}{
		{"changed binary", otherPCR, Expect{}, ev, "pcr23 mismatch"},
		{"other ak", otherAK, Expect{}, ev, "attestation key"},
		{"replayed nonce", pol, Expect{Nonce: []byte("fresh")}, ev, "nonce"},
		{"other cluster", pol, Expect{UserData: []byte("other manifest")}, ev, "user_data"},
		{"truncated", pol, Expect{}, ev[:len(ev)-3], "not a CBOR evidence map"},
		{"nsm document as tpm evidence", pol, Expect{}, []byte{0x84, 0x40, 0xa0, 0x40, 0x40}, "not a CBOR evidence map"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Verify(tt.raw, tt.pol, tt.exp, time.Now(), time.Minute)
			if err == nil || v != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, %v; want an error containing %q", v, err, tt.want)
			}
		})
	}
}

func TestEarlierBoot(t *testing.T) {
	base := tpm.ClockInfo{Clock: 5000, ResetCount: 3, RestartCount: 2}
	for _, tt := range []struct {
		name string
		b    tpm.ClockInfo
		want bool
	}{
		{"same", base, false},
		{"process restart, clock from zero (simulator)", tpm.ClockInfo{Clock: 10, ResetCount: 3, RestartCount: 2}, false},
		{"later clock", tpm.ClockInfo{Clock: 9000, ResetCount: 3, RestartCount: 2}, false},
		{"reboot", tpm.ClockInfo{Clock: 1, ResetCount: 4}, false},
		{"earlier reset", tpm.ClockInfo{Clock: 99999, ResetCount: 2, RestartCount: 9}, true},
		{"earlier restart", tpm.ClockInfo{Clock: 99999, ResetCount: 3, RestartCount: 1}, true},
	} {
		if got := EarlierBoot(base, tt.b); got != tt.want {
			t.Errorf("%s: EarlierBoot = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func mustP256(t *testing.T) *ecdsa.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}
