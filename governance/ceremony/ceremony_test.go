package ceremony

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealsign/sealsign/governance/canon"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
)

var (
	now     = time.Unix(1_760_000_000, 0)
	cluster = "cluster-1"
)

func adminKey(id, owner string, seed byte) *keys.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	priv := ed25519.NewKeyFromSeed(s)
	return &keys.PrivateKey{
		Public: keys.PublicKey{ID: id, Owner: owner, Algorithm: keys.Ed25519, Key: priv.Public().(ed25519.PublicKey)},
		Signer: priv,
	}
}

var (
	admin1   = adminKey("admin-1", "alice", 1)
	admin2   = adminKey("admin-2", "bob", 2)
	admin1b  = adminKey("admin-1b", "alice", 3) // alice's second key
	stranger = adminKey("stranger", "eve", 4)
)

func admins(t testing.TB) policy.Admins {
	t.Helper()
	s, err := keys.NewSet([]keys.PublicKey{admin1.Public, admin2.Public, admin1b.Public})
	if err != nil {
		t.Fatal(err)
	}
	return policy.Admins{Keys: s, Quorum: 2}
}

func base() Ceremony {
	return Ceremony{
		Format: FormatV1, ID: "keygen-2025-10-09-01", ClusterID: cluster, Kind: KindKeygen,
		Algorithm: "ecdsa-secp256k1", Parties: []string{"a", "b", "c"}, Threshold: 1,
		IssuedAt: now.Unix() - 60, ExpiresAt: now.Unix() + 600,
	}
}

func mustNew(t testing.TB, c Ceremony, by ...*keys.PrivateKey) []byte {
	t.Helper()
	b, err := New(c, by...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw signs c without validating it, to reach Verify's later checks.
func signRaw(t testing.TB, c Ceremony, by ...*keys.PrivateKey) []byte {
	t.Helper()
	body, err := canon.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	s := Signed{Ceremony: body}
	for _, k := range by {
		sig, err := Sign(body, k)
		if err != nil {
			t.Fatal(err)
		}
		s.Signatures = append(s.Signatures, sig)
	}
	out, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func with(f func(*Ceremony)) Ceremony {
	c := base()
	f(&c)
	return c
}

func TestVerify(t *testing.T) {
	tampered := func() []byte {
		s := Signed{}
		if err := canon.Unmarshal(mustNew(t, base(), admin1, admin2), &s); err != nil {
			t.Fatal(err)
		}
		c := base()
		c.Threshold = 2
		s.Ceremony, _ = canon.Marshal(&c)
		b, _ := s.Encode()
		return b
	}
	for _, tc := range []struct {
		name    string
		signed  []byte
		cluster string
		maxLife time.Duration
		want    error
		msg     string
	}{
		{"valid", mustNew(t, base(), admin1, admin2), cluster, 0, nil, ""},
		{"valid, three signers", mustNew(t, base(), admin1, admin2, admin1b), cluster, 0, nil, ""},
		{"one admin", mustNew(t, base(), admin1), cluster, 0, ErrQuorum, "1 valid admin signatures of 2 needed"},
		{"no signatures", mustNew(t, base()), cluster, 0, ErrQuorum, "0 valid admin signatures of 2 needed"},
		{"same admin twice", mustNew(t, base(), admin1, admin1), cluster, 0, ErrQuorum, `"admin-1": key already signed`},
		{"same owner twice", mustNew(t, base(), admin1, admin1b), cluster, 0, ErrQuorum, `owner "alice" already signed`},
		{"stranger", mustNew(t, base(), admin1, stranger), cluster, 0, ErrQuorum, `"stranger": not an admin key`},
		{"tampered after signing", tampered(), cluster, 0, ErrQuorum, "0 valid admin signatures"},
		{"other cluster", mustNew(t, base(), admin1, admin2), "cluster-2", 0, ErrWrongCluster, `is for cluster "cluster-1", want "cluster-2"`},
		{"expired", mustNew(t, with(func(c *Ceremony) { c.IssuedAt, c.ExpiresAt = now.Unix()-600, now.Unix() }), admin1, admin2), cluster, 0, ErrExpired, "expired at"},
		{"issued in the future", mustNew(t, with(func(c *Ceremony) { c.IssuedAt, c.ExpiresAt = now.Unix()+600, now.Unix()+900 }), admin1, admin2), cluster, 0, ErrNotYetValid, "ahead"},
		{"issued within skew", mustNew(t, with(func(c *Ceremony) { c.IssuedAt = now.Unix() + 60 }), admin1, admin2), cluster, 0, nil, ""},
		{"lifetime over an hour", mustNew(t, with(func(c *Ceremony) { c.ExpiresAt = c.IssuedAt + 3601 }), admin1, admin2), cluster, 0, ErrLifetime, "limit 1h0m0s"},
		{"lifetime cap not raised", mustNew(t, with(func(c *Ceremony) { c.ExpiresAt = c.IssuedAt + 3601 }), admin1, admin2), cluster, 2 * time.Hour, ErrLifetime, "limit 1h0m0s"},
		{"lifetime over caller limit", mustNew(t, base(), admin1, admin2), cluster, time.Minute, ErrLifetime, "limit 1m0s"},
		{"unknown kind", signRaw(t, with(func(c *Ceremony) { c.Kind = "mint" }), admin1, admin2), cluster, 0, ErrMalformed, `kind "mint" unknown`},
		{"bad id", signRaw(t, with(func(c *Ceremony) { c.ID = "short" }), admin1, admin2), cluster, 0, ErrMalformed, `id "short" invalid`},
		{"unsorted parties", signRaw(t, with(func(c *Ceremony) { c.Parties = []string{"b", "a"} }), admin1, admin2), cluster, 0, ErrMalformed, "not sorted"},
		{"threshold too high", signRaw(t, with(func(c *Ceremony) { c.Threshold = 3 }), admin1, admin2), cluster, 0, ErrMalformed, "threshold 3 invalid"},
		{"format 2", signRaw(t, with(func(c *Ceremony) { c.Format = 2 }), admin1, admin2), cluster, 0, ErrMalformed, "format 2"},
		{"garbage", []byte("not cbor"), cluster, 0, ErrMalformed, "signed envelope"},
		{"too large", make([]byte, MaxSize+1), cluster, 0, ErrTooLarge, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, by, err := Verify(tc.signed, admins(t), tc.cluster, now, tc.maxLife)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.ID != base().ID || len(by) < 2 || by[0] != "admin-1" || by[1] != "admin-2" {
					t.Fatalf("got %+v by %v", c, by)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
			if c != nil || by != nil {
				t.Fatal("result returned with an error")
			}
		})
	}
}

func TestReplayCache(t *testing.T) {
	r, err := NewReplayCache(2)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := base(), with(func(c *Ceremony) { c.ID = "keygen-2025-10-09-02" }), with(func(c *Ceremony) { c.ID = "keygen-2025-10-09-03" })
	if err := r.Admit(&a, now); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(&a); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "already ran") {
		t.Fatalf("Check replay: %v", err)
	}
	if err := r.Admit(&a, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("Admit replay: %v", err)
	}
	if err := r.Admit(&b, now); err != nil {
		t.Fatal(err)
	}
	if err := r.Admit(&c, now); !errors.Is(err, ErrCacheFull) {
		t.Fatalf("full: %v", err)
	}
	// Once a and b have expired (plus skew) there is room again.
	later := time.Unix(a.ExpiresAt, 0).Add(ClockSkew + time.Second)
	if err := r.Admit(&c, later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	r.SetFloor(now)
	d := with(func(c *Ceremony) { c.ID = "keygen-2025-10-09-04" })
	if err := r.Check(&d); !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "replay floor") {
		t.Fatalf("floor: %v", err)
	}
	if _, err := NewReplayCache(MaxReplayCapacity + 1); err == nil {
		t.Fatal("capacity over the limit accepted")
	}
}
