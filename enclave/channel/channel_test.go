package channel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/sealsign/sealsign/enclave/api"
)

func pair(t *testing.T, id string) (*Keys, *Peer) {
	t.Helper()
	k, err := NewKeys(id, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPeer(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

func header() Header {
	return Header{ProposalID: bytes.Repeat([]byte{1}, 32), SessionID: bytes.Repeat([]byte{2}, 32), Seq: 7}
}

func TestSealOpen(t *testing.T) {
	a, pa := pair(t, "a")
	b, pb := pair(t, "b")
	c, pc := pair(t, "c")
	msg := []byte("round 1 message")
	raw, err := a.Seal(pb, header(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, msg) {
		t.Fatal("plaintext visible in the envelope")
	}
	env, err := ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Open(pa, env)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	tests := []struct {
		name   string
		mutate func(e *Envelope)
		opener *Keys
		from   *Peer
		want   error
	}{
		{"wrong recipient", func(*Envelope) {}, c, pa, ErrMalformed},
		{"claimed sender differs", func(*Envelope) {}, b, pc, ErrMalformed},
		{"seq altered", func(e *Envelope) { e.Header.Seq++ }, b, pa, ErrSignature},
		{"session altered", func(e *Envelope) { e.Header.SessionID[0] ^= 1 }, b, pa, ErrSignature},
		{"ciphertext flipped", func(e *Envelope) { e.Ciphertext[len(e.Ciphertext)-1] ^= 1 }, b, pa, ErrSignature},
		{"signature flipped", func(e *Envelope) { e.Signature[0] ^= 1 }, b, pa, ErrSignature},
		{"re-signed by c as a", func(e *Envelope) {
			hdr, _ := api.Marshal(e.Header)
			e.Signature = c.Sign(domainSig, append(hdr, e.Ciphertext...))
		}, b, pa, ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := ParseEnvelope(raw)
			tc.mutate(e)
			_, err := tc.opener.Open(tc.from, e)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignVerifyDomains(t *testing.T) {
	a, pa := pair(t, "a")
	sig := a.Sign("x", []byte("data"))
	if !pa.Verify("x", []byte("data"), sig) {
		t.Fatal("valid signature rejected")
	}
	if pa.Verify("y", []byte("data"), sig) {
		t.Fatal("signature accepted under another domain")
	}
	if pa.Verify("x", []byte("data"), sig[:10]) {
		t.Fatal("short signature accepted")
	}
}

func TestNewPeerRejectsBadKeys(t *testing.T) {
	if _, err := NewPeer(api.Identity{PartyID: "a", SigningKey: []byte{1}, HPKEKey: make([]byte, 32)}); err == nil {
		t.Fatal("short signing key accepted")
	}
	if _, err := NewPeer(api.Identity{PartyID: "a", SigningKey: make([]byte, 32), HPKEKey: []byte{1, 2}}); err == nil {
		t.Fatal("short hpke key accepted")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	a, _ := NewKeys("a", rand.Reader)
	_, pb := func() (*Keys, *Peer) { k, _ := NewKeys("b", rand.Reader); p, _ := NewPeer(k.Public()); return k, p }()
	raw, _ := a.Seal(pb, header(), []byte("hello"))
	f.Add(raw)
	f.Add([]byte{0xa0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		re, err := api.Marshal(env)
		if err != nil {
			t.Fatalf("re-encode of a parsed envelope failed: %v", err)
		}
		if _, err := ParseEnvelope(re); err != nil {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
