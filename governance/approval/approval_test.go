package approval

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

var (
	now       = time.Unix(1_760_000_000, 0)
	aliceKey  = ed25519.NewKeyFromSeed(fill(1))
	bobKey    = ed25519.NewKeyFromSeed(fill(2))
	carolKey  = mustP256()
	strangerK = ed25519.NewKeyFromSeed(fill(9))
	subject   = Subject{
		ClusterID:     "cluster-1",
		RequestID:     "req-0123456789abcdef",
		RequestDigest: sha256.Sum256([]byte("signed request")),
		PayloadHash:   sha256.Sum256([]byte("payload")),
		PolicyVersion: 7,
	}
)

func fill(b byte) []byte {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = b
	}
	return s
}

func mustP256() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func approvers(t testing.TB) keys.Set {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&carolKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.NewSet([]keys.PublicKey{
		{ID: "alice-approver", Owner: "alice", Algorithm: keys.Ed25519, Key: aliceKey.Public().(ed25519.PublicKey)},
		{ID: "bob-approver", Owner: "bob", Algorithm: keys.Ed25519, Key: bobKey.Public().(ed25519.PublicKey)},
		{ID: "carol-approver", Owner: "carol", Algorithm: keys.ECDSAP256, Key: der},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func base(keyID, decision string) Approval {
	return Approval{
		Format:        FormatV1,
		ClusterID:     subject.ClusterID,
		RequestID:     subject.RequestID,
		RequestDigest: subject.RequestDigest,
		PayloadHash:   subject.PayloadHash,
		PolicyVersion: subject.PolicyVersion,
		ApproverKeyID: keyID,
		Decision:      decision,
		IssuedAt:      now.Unix() - 60,
		ExpiresAt:     now.Unix() + 3600,
	}
}

func signRaw(t testing.TB, a Approval, priv crypto.Signer, domain string) []byte {
	t.Helper()
	body, err := canon.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := keys.Sign(priv, domain, body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := canon.Marshal(&Signed{Approval: body, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustNew(t testing.TB, a Approval, priv crypto.Signer) []byte {
	t.Helper()
	b, err := New(a, priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyAccepts(t *testing.T) {
	as := approvers(t)
	tests := []struct {
		name string
		a    Approval
		priv crypto.Signer
	}{
		{"ed25519 approve", base("alice-approver", Approve), aliceKey},
		{"p256 approve", base("carol-approver", Approve), carolKey},
		{"reject with reason", func() Approval {
			a := base("bob-approver", Reject)
			a.Reason = "destination not on the vendor list — call treasury"
			return a
		}(), bobKey},
		{"max lifetime", func() Approval {
			a := base("alice-approver", Approve)
			a.ExpiresAt = a.IssuedAt + int64(MaxLifetime/time.Second)
			return a
		}(), aliceKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed := mustNew(t, tt.a, tt.priv)
			got, err := Verify(signed, as, subject, now)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.a
			want.digest = Digest(signed)
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("got %+v, want %+v", *got, want)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	as := approvers(t)
	good := mustNew(t, base("alice-approver", Approve), aliceKey)
	var gs Signed
	if err := canon.Unmarshal(good, &gs); err != nil {
		t.Fatal(err)
	}
	env := func(s Signed) []byte {
		b, err := canon.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mod := func(f func(*Approval)) []byte {
		a := base("alice-approver", Approve)
		f(&a)
		return signRaw(t, a, aliceKey, Domain)
	}
	flip := append([]byte(nil), gs.Signature...)
	flip[10] ^= 0x80
	other := sha256.Sum256([]byte("other"))

	tests := []struct {
		name   string
		signed []byte
		want   Subject
		now    time.Time
		err    error
		msg    string
	}{
		{"garbage", []byte("{}"), subject, now, ErrMalformed, "signed envelope"},
		{"too large", make([]byte, maxSigned+1), subject, now, ErrMalformed, "limit 4096"},
		{"body garbage", env(Signed{Approval: []byte{0x00}, Signature: gs.Signature}), subject, now, ErrMalformed, "approval body"},
		{"format", mod(func(a *Approval) { a.Format = 0 }), subject, now, ErrMalformed, "format 0 unsupported, want 1"},
		{"unknown approver", signRaw(t, base("mallory", Approve), strangerK, Domain), subject, now, ErrUnknownApprover, `"mallory" is not an approver key`},
		{"flipped signature", env(Signed{Approval: gs.Approval, Signature: flip}), subject, now, ErrBadSignature, `approver key "alice-approver" (ed25519)`},
		{"wrong key", signRaw(t, base("alice-approver", Approve), bobKey, Domain), subject, now, ErrBadSignature, "alice-approver"},
		{"wrong domain", signRaw(t, base("alice-approver", Approve), aliceKey, "sealsign/v1/request"), subject, now, ErrBadSignature, "alice-approver"},
		{"ed signature on p256 key", signRaw(t, base("carol-approver", Approve), aliceKey, Domain), subject, now, ErrBadSignature, "ecdsa-p256"},
		{"bad cluster id", mod(func(a *Approval) { a.ClusterID = "" }), subject, now, ErrMalformed, "cluster id"},
		{"bad request id", mod(func(a *Approval) { a.RequestID = "short" }), subject, now, ErrMalformed, `request id "short" invalid`},
		{"zero request digest", mod(func(a *Approval) { a.RequestDigest = [32]byte{} }), subject, now, ErrMalformed, "request digest is zero"},
		{"zero payload hash", mod(func(a *Approval) { a.PayloadHash = [32]byte{} }), subject, now, ErrMalformed, "payload hash is zero"},
		{"decision", mod(func(a *Approval) { a.Decision = "APPROVE" }), subject, now, ErrMalformed, `decision "APPROVE" invalid`},
		{"long reason", mod(func(a *Approval) { a.Reason = strings.Repeat("x", MaxReasonLen+1) }), subject, now, ErrMalformed, "reason is 257 bytes, limit 256"},
		{"control in reason", mod(func(a *Approval) { a.Reason = "ok\x1b[2J" }), subject, now, ErrMalformed, "non-printable"},
		{"window", mod(func(a *Approval) { a.ExpiresAt = a.IssuedAt - 1 }), subject, now, ErrMalformed, "validity window"},
		{"lifetime", mod(func(a *Approval) { a.ExpiresAt = a.IssuedAt + int64(MaxLifetime/time.Second) + 1 }), subject, now, ErrLifetime, "limit 168h0m0s"},
		{"cluster mismatch", good, Subject{ClusterID: "cluster-2", RequestID: subject.RequestID}, now, ErrMismatch, `for cluster "cluster-1", want "cluster-2"`},
		{"request mismatch", good, func() Subject { s := subject; s.RequestID = "req-ffffffffffffffff"; return s }(), now, ErrMismatch, `for request "req-0123456789abcdef", want "req-ffffffffffffffff"`},
		{"request digest mismatch", good, func() Subject { s := subject; s.RequestDigest = other; return s }(), now, ErrMismatch,
			"request digest " + hex.EncodeToString(subject.RequestDigest[:]) + ", want " + hex.EncodeToString(other[:])},
		{"payload mismatch", good, func() Subject { s := subject; s.PayloadHash = other; return s }(), now, ErrMismatch,
			"payload hash " + hex.EncodeToString(subject.PayloadHash[:]) + ", want " + hex.EncodeToString(other[:])},
		{"policy version mismatch", good, func() Subject { s := subject; s.PolicyVersion = 8; return s }(), now, ErrMismatch, "policy version 7, want 8 (the policy changed; approve again)"},
		{"expired", good, subject, time.Unix(base("", "").ExpiresAt, 0), ErrExpired, "expired at"},
		{"future", mod(func(a *Approval) { a.IssuedAt = now.Unix() + 121; a.ExpiresAt = a.IssuedAt + 10 }), subject, now, ErrNotYetValid, "check the approver's clock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Verify(tt.signed, as, tt.want, tt.now)
			if err == nil || got != nil {
				t.Fatalf("accepted: %+v, %v", got, err)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %q is not %q", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not contain %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "approval: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestBadSignatureMatchesKeys(t *testing.T) {
	_, err := Verify(signRaw(t, base("alice-approver", Approve), bobKey, Domain), approvers(t), subject, now)
	if !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("%v does not match keys.ErrBadSignature", err)
	}
}

func TestApprovalEncodingVector(t *testing.T) {
	// Hand-assembled CBOR pinning the key layout: map of 10 (Reason
	// omitted), keys 1..11 in order.
	a := Approval{Format: 1, ClusterID: "c", RequestID: "r", RequestDigest: [32]byte{1}, PayloadHash: [32]byte{2},
		PolicyVersion: 3, ApproverKeyID: "k", Decision: Reject, IssuedAt: 4, ExpiresAt: 5}
	b, err := canon.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	want := "aa" + "0101" + "026163" + "036172" +
		"045820" + "01" + strings.Repeat("00", 31) +
		"055820" + "02" + strings.Repeat("00", 31) +
		"0603" + "07616b" + "0866" + hex.EncodeToString([]byte("reject")) + "0a04" + "0b05"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
}
