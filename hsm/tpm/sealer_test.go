package tpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/sealsign/sealsign/hsm"
)

var testAAD = []byte("party-a/key-1/epoch-1/share")

func TestSealRoundTrip(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 7, 16)
	for _, tc := range []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte{0x42}},
		{"key share", bytes.Repeat([]byte("share"), 40)},
		{"over 128 bytes, the TPM's sealed-object limit", bytes.Repeat([]byte{0xa5}, 129)},
		{"1 MiB", bytes.Repeat([]byte{1, 2, 3, 4}, 1<<18)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, err := s.Seal(testAAD, tc.plaintext)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if bytes.Contains(blob, tc.plaintext) && len(tc.plaintext) > 4 {
				t.Fatalf("sealed data contains the plaintext")
			}
			got, err := s.Unseal(testAAD, blob)
			if err != nil {
				t.Fatalf("Unseal: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Unseal returned %d bytes, want the %d sealed", len(got), len(tc.plaintext))
			}
		})
	}

	// Every Seal draws a new data key and nonce.
	a, err := s.Seal(testAAD, []byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal(testAAD, []byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := parseSealed(a)
	pb, _ := parseSealed(b)
	if bytes.Equal(pa.private, pb.private) || bytes.Equal(pa.nonce, pb.nonce) || bytes.Equal(pa.ciphertext, pb.ciphertext) {
		t.Fatalf("two seals of the same plaintext share a sealed key, nonce or ciphertext")
	}
}

// The hsm blob format works on top of the TPM sealer, and a PCR change
// reaches the caller of hsm.OpenBlob as ErrPolicy.
func TestSealBlobThroughHSM(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 16)
	b := hsm.Binding{PartyID: "party-a", KeyID: "key-1", Epoch: 3, Kind: "share/ecdsa-secp256k1"}
	blob, err := hsm.SealBlob(s, b, []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := hsm.OpenBlob(s, b, blob)
	if err != nil || string(got) != "share" {
		t.Fatalf("OpenBlob = %q, %v; want share", got, err)
	}
	if err := tp.ExtendPCR(16, []byte("another enclave")); err != nil {
		t.Fatal(err)
	}
	_, err = hsm.OpenBlob(s, b, blob)
	if !errors.Is(err, ErrPolicy) || errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("OpenBlob after extending pcr 16: %v; want ErrPolicy and not hsm.ErrTampered", err)
	}
}

func TestUnsealAfterExtend(t *testing.T) {
	for _, tc := range []struct {
		name      string
		extend    int
		wantError bool
	}{
		{"pcr in the policy", 16, true},
		{"other pcr in the policy", 7, true},
		{"unrelated pcr", 23, false},
		{"unrelated low pcr", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := openSim(t)
			s := newSealer(t, tp, 7, 16)
			blob, err := s.Seal(testAAD, []byte("share"))
			if err != nil {
				t.Fatal(err)
			}
			if err := tp.ExtendPCR(tc.extend, []byte("measurement")); err != nil {
				t.Fatal(err)
			}
			got, err := s.Unseal(testAAD, blob)
			if !tc.wantError {
				if err != nil || string(got) != "share" {
					t.Fatalf("Unseal after extending unrelated pcr %d = %q, %v; want share", tc.extend, got, err)
				}
				return
			}
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("Unseal after extending pcr %d: %v; want ErrPolicy", tc.extend, err)
			}
			if errors.Is(err, hsm.ErrTampered) || errors.Is(err, ErrDevice) {
				t.Fatalf("policy failure also classified as tampering or outage: %v", err)
			}
			msg := err.Error()
			for _, want := range []string{"tpm: pcr policy failed", "pcr " + strconv.Itoa(tc.extend) + " (sha256)", "sealed under"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if got != nil {
				t.Fatalf("Unseal returned data with an error")
			}
		})
	}
}

// With the precise pre-check off, the TPM itself refuses: the policy is
// enforced by the TPM, not by this package's comparison.
func TestTPMEnforcesPolicy(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 16)
	blob, err := s.Seal(testAAD, []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.ExtendPCR(16, []byte("x")); err != nil {
		t.Fatal(err)
	}
	b, err := parseSealed(blob)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.open(testAAD, b, false)
	if !errors.Is(err, ErrPolicy) || !errors.Is(err, tpm2.TPMRCPolicyFail) {
		t.Fatalf("unseal without pre-check: %v; want ErrPolicy caused by TPM_RC_POLICY_FAIL", err)
	}
	if !strings.Contains(err.Error(), "pcr policy failed") {
		t.Fatalf("error %q does not say the pcr policy failed", err)
	}
	// Failed unseals leave no session or object behind: the reference TPM
	// holds only three of each, and unsealing still works afterwards.
	other := newSealer(t, tp, 23)
	ok, err := other.Seal(testAAD, []byte("still fine"))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := s.open(testAAD, b, false); !errors.Is(err, ErrPolicy) {
			t.Fatalf("repeated unseal: %v", err)
		}
	}
	if got, err := other.Unseal(testAAD, ok); err != nil || string(got) != "still fine" {
		t.Fatalf("Unseal after failed unseals = %q, %v", got, err)
	}
}

func TestUnsealOtherSelection(t *testing.T) {
	tp := openSim(t)
	blob, err := newSealer(t, tp, 16).Seal(testAAD, []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = newSealer(t, tp, 16, 23).Unseal(testAAD, blob)
	if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "sealed under pcrs [16], this sealer's policy is pcrs [16 23]") {
		t.Fatalf("Unseal with another selection: %v; want ErrPolicy naming both selections", err)
	}
}

func TestAADRequired(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 16)
	if _, err := s.Seal(nil, []byte("x")); !errors.Is(err, hsm.ErrAADRequired) {
		t.Fatalf("Seal without aad: %v; want hsm.ErrAADRequired", err)
	}
	blob, err := s.Seal(testAAD, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal([]byte{}, blob); !errors.Is(err, hsm.ErrAADRequired) {
		t.Fatalf("Unseal without aad: %v; want hsm.ErrAADRequired", err)
	}
}

func TestAADMismatch(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 16)
	a, err := s.Seal([]byte("party-a/share"), []byte("share of a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal([]byte("party-b/share"), []byte("share of b"))
	if err != nil {
		t.Fatal(err)
	}
	// The host hands party b's blob to a request for party a's.
	_, err = s.Unseal([]byte("party-a/share"), b)
	if !errors.Is(err, ErrAADMismatch) || !errors.Is(err, hsm.ErrTampered) {
		t.Fatalf("Unseal with swapped aad: %v; want ErrAADMismatch and hsm.ErrTampered", err)
	}
	// Rewriting the aad digest to match does not help: GCM authenticates
	// the aad and the header.
	pa, _ := parseSealed(a)
	forged := bytes.Clone(b)
	off := 1 + selectSize + pcrValueSize
	copy(forged[off:off+aadDigestSize], pa.aadDigest)
	_, err = s.Unseal([]byte("party-a/share"), forged)
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("Unseal with rewritten aad digest: %v; want ErrTampered", err)
	}
}

// layout returns the offsets of a blob's regions.
type layout struct {
	sel, values, aad, pubSize, pub, privSize, priv, nonce, ct int
}

func layoutOf(t *testing.T, blob []byte) layout {
	t.Helper()
	b, err := parseSealed(blob)
	if err != nil {
		t.Fatal(err)
	}
	var l layout
	l.sel = 1
	l.values = l.sel + selectSize
	l.aad = l.values + len(b.pcrs)*pcrValueSize
	l.pubSize = l.aad + aadDigestSize
	l.pub = l.pubSize + 2
	l.privSize = l.pub + len(b.public)
	l.priv = l.privSize + 2
	l.nonce = l.priv + len(b.private)
	l.ct = l.nonce + nonceSize
	return l
}

func TestTamperedBlobs(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 7, 16)
	plaintext := []byte("a key share that must not change")
	blob, err := s.Seal(testAAD, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Seal(testAAD, []byte("another share"))
	if err != nil {
		t.Fatal(err)
	}
	l := layoutOf(t, blob)
	lo := layoutOf(t, other)
	flip := func(off int) []byte {
		b := bytes.Clone(blob)
		b[off] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"version", flip(0), hsm.ErrUnknownVersion},
		{"selection grows", flip(l.sel), ErrMalformed},          // pcr 0 added: lengths no longer add up
		{"selection shrinks", flip(l.sel + 2), ErrMalformed},    // pcr 16 dropped
		{"recorded pcr value", flip(l.values + 5), ErrTampered}, // no longer gives the object's policy
		{"aad digest", flip(l.aad), ErrAADMismatch},
		{"public size", flip(l.pubSize + 1), ErrMalformed},
		{"public attributes", flip(l.pub + 7), ErrTampered},
		{"public policy", flip(l.pub + 12), ErrTampered},
		{"public unique", flip(l.privSize - 1), ErrTampered},
		{"private size", flip(l.privSize + 1), ErrTampered}, // still parses: one byte moves from nonce to private
		{"private integrity", flip(l.priv + 4), ErrTampered},
		{"private sensitive", flip(l.nonce - 1), ErrTampered},
		{"nonce", flip(l.nonce), ErrTampered},
		{"ciphertext", flip(l.ct), ErrTampered},
		{"tag", flip(len(blob) - 1), ErrTampered},
		{"truncated in header", blob[:l.priv+3], ErrMalformed},
		{"truncated before tag", blob[:l.ct+tagSize-1], ErrMalformed},
		{"truncated ciphertext", blob[:len(blob)-1], ErrTampered},
		{"appended byte", append(bytes.Clone(blob), 0), ErrTampered},
		{"sealed key of another blob", splice(blob[:l.nonce], other[lo.nonce:]), ErrTampered},
		{"ciphertext of another blob", splice(blob[:l.ct], other[lo.ct:]), ErrTampered},
		{"oversized", make([]byte, MaxSealedSize+1), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := s.Unseal(testAAD, tc.data)
			if err == nil {
				t.Fatalf("Unseal accepted a modified blob (%d bytes of plaintext)", len(pt))
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Unseal: %v; want %v", err, tc.want)
			}
			if tc.want != hsm.ErrUnknownVersion && !errors.Is(err, hsm.ErrTampered) {
				t.Fatalf("Unseal: %v; does not match hsm.ErrTampered, so callers would take an attack for an outage", err)
			}
			if errors.Is(err, ErrDevice) {
				t.Fatalf("Unseal: %v; a bad blob is classified as a device failure", err)
			}
			if bytes.Contains([]byte(err.Error()), plaintext) {
				t.Fatalf("error contains the plaintext")
			}
		})
	}
	// The original still opens: none of the above consumed anything.
	if got, err := s.Unseal(testAAD, blob); err != nil || !bytes.Equal(got, plaintext) {
		t.Fatalf("original blob after the attempts: %q, %v", got, err)
	}
}

func splice(a, b []byte) []byte { return append(bytes.Clone(a), b...) }

// Known layout: the fields sit where the format comment says.
func TestSealedLayout(t *testing.T) {
	tp := openSim(t)
	s := newSealer(t, tp, 16, 7)
	blob, err := s.Seal([]byte("aad"), []byte("12345"))
	if err != nil {
		t.Fatal(err)
	}
	if blob[0] != 1 {
		t.Fatalf("version byte %d, want 1", blob[0])
	}
	if got := blob[1:4]; !bytes.Equal(got, []byte{0x80, 0x00, 0x01}) {
		t.Fatalf("pcr selection % x, want 80 00 01 (pcrs 7 and 16)", got)
	}
	pcrs, err := tp.ReadPCRs([]int{7, 16})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blob[4:36], pcrs[7]) || !bytes.Equal(blob[36:68], pcrs[16]) {
		t.Fatalf("recorded pcr values differ from the current ones")
	}
	if !bytes.Equal(blob[68:100], aadDigest([]byte("aad"))) {
		t.Fatalf("aad digest misplaced")
	}
	if n := binary.BigEndian.Uint16(blob[100:]); n != 78 {
		t.Fatalf("public area is %d bytes, want 78", n)
	}
	l := layoutOf(t, blob)
	if len(blob) != l.ct+5+tagSize {
		t.Fatalf("blob is %d bytes, want header %d + 5 + tag", len(blob), l.ct)
	}
	// The policy in the public area is TPM2_PolicyPCR over these values.
	pol, err := policyDigest([]int{7, 16}, [][]byte{pcrs[7], pcrs[16]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(blob[l.pub:l.privSize], pol) {
		t.Fatalf("public area does not carry the PolicyPCR digest")
	}
}

func TestSealerInvalidPCRs(t *testing.T) {
	tp := openSim(t)
	for _, pcrs := range [][]int{nil, {}, {-1}, {24}, {16, 16}} {
		if _, err := tp.Sealer(pcrs); !errors.Is(err, ErrInvalidPCR) {
			t.Errorf("Sealer(%v): %v; want ErrInvalidPCR", pcrs, err)
		}
	}
	s := newSealer(t, tp, 23, 0, 16)
	if got := s.PCRs(); len(got) != 3 || got[0] != 0 || got[1] != 16 || got[2] != 23 {
		t.Fatalf("PCRs() = %v, want [0 16 23]", got)
	}
}
