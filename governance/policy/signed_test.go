package policy

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
)

type admin struct {
	id   string
	priv ed25519.PrivateKey
}

func testAdmins(t testing.TB) (Admins, map[string]admin) {
	t.Helper()
	all := map[string]admin{}
	var pubs []keys.PublicKey
	for i, spec := range []struct{ id, owner string }{{"adm-a", "ann"}, {"adm-b", "ben"}, {"adm-c", "cat"}, {"adm-c2", "cat"}} {
		seed := bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize)
		priv := ed25519.NewKeyFromSeed(seed)
		all[spec.id] = admin{spec.id, priv}
		pubs = append(pubs, keys.PublicKey{ID: spec.id, Owner: spec.owner, Algorithm: keys.Ed25519, Key: priv.Public().(ed25519.PublicKey)})
	}
	set, err := keys.NewSet(pubs)
	if err != nil {
		t.Fatal(err)
	}
	return Admins{Keys: set, Quorum: 2}, all
}

func signed(t testing.TB, p *Policy, signers ...admin) []byte {
	t.Helper()
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return signedBytes(t, enc, signers...)
}

func signedBytes(t testing.TB, enc []byte, signers ...admin) []byte {
	t.Helper()
	sp := SignedPolicy{Policy: enc, Signatures: []Sig{}}
	for _, a := range signers {
		s, err := SignPolicy(enc, a.id, a.priv)
		if err != nil {
			t.Fatal(err)
		}
		sp.Signatures = append(sp.Signatures, s)
	}
	b, err := sp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := canon.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAccept(t *testing.T) {
	admins, ks := testAdmins(t)
	a, b, c, c2 := ks["adm-a"], ks["adm-b"], ks["adm-c"], ks["adm-c2"]
	now := t0
	current := defaultPolicy(t) // version 1, update_time_lock 48 h
	current.Version = 5
	if err := current.Validate(); err != nil {
		t.Fatal(err)
	}
	lock := int64(current.UpdateTimeLock)
	next := func(mut func(*Policy)) *Policy {
		p := defaultPolicy(t)
		p.Version = 6
		p.IssuedAt = now.Unix() - 60
		p.NotBefore = p.IssuedAt + lock
		if mut != nil {
			mut(p)
		}
		return p
	}
	foreign := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xee}, ed25519.SeedSize))
	wrongDomain := func() []byte {
		p := next(nil)
		enc, _ := p.Encode()
		sig, _ := keys.Sign(b.priv, "sealsign/v1/approval", enc)
		good, _ := SignPolicy(enc, a.id, a.priv)
		out, _ := (&SignedPolicy{Policy: enc, Signatures: []Sig{good, {KeyID: b.id, Signature: sig}}}).Encode()
		return out
	}
	tampered := func() []byte {
		p := next(nil)
		enc, _ := p.Encode()
		sp := SignedPolicy{Policy: enc}
		for _, s := range []admin{a, b} {
			sig, _ := SignPolicy(enc, s.id, s.priv)
			sp.Signatures = append(sp.Signatures, sig)
		}
		// Flip the version after signing: 6 → 7.
		i := bytes.Index(sp.Policy, []byte{0x03, 0x06})
		sp.Policy = append([]byte{}, sp.Policy...)
		sp.Policy[i+1] = 0x07
		out, _ := sp.Encode()
		return out
	}
	nonCanonical := func() []byte {
		out := signed(t, next(nil), a, b)
		// Re-encode the outer map header 0xa2 as 0xb9 0x00 0x02.
		return append([]byte{0xb9, 0x00, 0x02}, out[1:]...)
	}
	tests := []struct {
		name    string
		current *Policy
		next    []byte
		cluster string
		want    string // "" = accepted
	}{
		{"update ok", current, signed(t, next(nil), a, b), "demo", ""},
		{"three signers ok", current, signed(t, next(nil), a, b, c), "demo", ""},
		{"genesis ignores time lock", nil, signed(t, next(func(p *Policy) { p.NotBefore = p.IssuedAt }), a, c), "demo", ""},
		{"no quorum", current, signed(t, next(nil), a), "demo", "policy: 1 valid admin signatures of 2 needed"},
		{"no signatures", current, signed(t, next(nil)), "demo", "0 valid admin signatures of 2 needed"},
		{"duplicate signer", current, signed(t, next(nil), a, a), "demo", `signature 1 by "adm-a": key already signed`},
		{"same owner two keys", current, signed(t, next(nil), c, c2), "demo", `owner "cat" already signed`},
		{"unknown signer", current, signed(t, next(nil), a, admin{"stranger", foreign}), "demo", `"stranger": not an admin key`},
		{"wrong domain signature", current, wrongDomain(), "demo", `signature 1 by "adm-b": does not verify over domain "sealsign/v1/policy"`},
		{"tampered after signing", current, tampered(), "demo", "0 valid admin signatures of 2 needed"},
		{"non-canonical envelope", current, nonCanonical(), "demo", "not core deterministic"},
		{"garbage", current, []byte("not cbor"), "demo", "policy: decode signed policy"},
		{"rollback", current, signed(t, next(func(p *Policy) { p.Version = 3 }), a, b), "demo", "policy version 3 is not newer than the sealed version 5"},
		{"same version replay", current, signed(t, next(func(p *Policy) { p.Version = 5 }), a, b), "demo", "policy version 5 is not newer than the sealed version 5"},
		{"wrong cluster", current, signed(t, next(func(p *Policy) { p.ClusterID = "prod" }), a, b), "demo", `issued for cluster "prod", this is cluster "demo"`},
		{"time lock", current, signed(t, next(func(p *Policy) { p.NotBefore = p.IssuedAt + lock - 1 }), a, b), "demo", "update_time_lock 172800 s"},
		{"backdated issue", current, signed(t, next(func(p *Policy) { p.IssuedAt = now.Unix() - 3*24*3600; p.NotBefore = now.Unix() }), a, b), "demo", "re-issue and re-sign"},
		{"issued in the future", current, signed(t, next(func(p *Policy) { p.IssuedAt = now.Unix() + 3600; p.NotBefore = p.IssuedAt + lock }), a, b), "demo", "in the future"},
		{"invalid policy inside", current, signedBytes(t, mustMarshal(t, &Policy{Format: 2, ClusterID: "demo", Version: 6, Rules: []Rule{}}), a, b), "demo", "policy: invalid: format 2 unsupported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Accept(tc.current, tc.next, admins, tc.cluster, now)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p == nil || p.compiled == nil {
					t.Fatal("accepted policy not validated")
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
}

func TestAcceptBadAdmins(t *testing.T) {
	admins, ks := testAdmins(t)
	admins.Quorum = 4 // only 3 owners
	_, err := Accept(nil, signed(t, defaultPolicy(t), ks["adm-a"]), admins, "demo", t0)
	if err == nil || !strings.Contains(err.Error(), "quorum 4 impossible with 3 admin owners") {
		t.Fatalf("got %v", err)
	}
}

func TestStore(t *testing.T) {
	admins, ks := testAdmins(t)
	genesis := defaultPolicy(t)
	st, err := NewStore(genesis)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	p2 := defaultPolicy(t)
	p2.Version = 2
	p2.IssuedAt = now.Unix()
	p2.NotBefore = now.Unix() + int64(genesis.UpdateTimeLock)
	p2.Rules = p2.Rules[:1] // only deny-raw: nothing is allowed any more
	if _, err := st.Accept(signed(t, p2, ks["adm-a"], ks["adm-b"]), admins, "demo", now); err != nil {
		t.Fatal(err)
	}
	small := evmInput(transferSpec{"ETH", evmA, "1", false})
	if eff := st.Effective(now); eff.Version != 1 || st.Pending().Version != 2 {
		t.Fatalf("effective %d pending %v", eff.Version, st.Pending())
	}
	if d := st.Effective(now).Evaluate(small, NewVelocityState()); d.Outcome != Allow {
		t.Fatalf("old policy should still allow: %v", d.Err())
	}
	// The pending policy alone would deny as not yet effective.
	if d := st.Pending().Evaluate(small, NewVelocityState()); d.Denials[0].Code != NotYetEffective {
		t.Fatalf("got %v", d.Err())
	}
	// Sealed and unsealed, the store keeps both.
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var st2 Store
	if err := st2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	// A replay of version 2 is refused against the pending one.
	if _, err := st2.Accept(signed(t, p2, ks["adm-a"], ks["adm-b"]), admins, "demo", now); err == nil || !strings.Contains(err.Error(), "not newer than the sealed version 2") {
		t.Fatalf("got %v", err)
	}
	later := time.Unix(p2.NotBefore, 0)
	small.Now = later
	if eff := st2.Effective(later); eff.Version != 2 || st2.Pending() != nil {
		t.Fatalf("not promoted: %d", eff.Version)
	}
	if d := st2.Effective(later).Evaluate(small, NewVelocityState()); d.Outcome != Deny {
		t.Fatalf("new policy should deny: %v", d.Err())
	}
}
