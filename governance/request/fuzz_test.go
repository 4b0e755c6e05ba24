package request

import (
	"testing"
	"time"
)

// FuzzVerifyRequest: Verify never panics, and whatever it accepts is a
// valid request whose digest is that of the input.
func FuzzVerifyRequest(f *testing.F) {
	good, err := New(base(), edPriv)
	if err != nil {
		f.Fatal(err)
	}
	r := base()
	r.ClientKeyID = "client-p256"
	r.Signers = []string{"a", "b"}
	r.Path = Path{0, 5}
	p, err := New(r, p256Priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(p)
	f.Add(good[:len(good)/2])
	f.Add(signRaw(f, Request{Format: 1}, edPriv, Domain))
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	f.Add([]byte{})
	cs := clients(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Verify(data, cs, cluster, now, 0)
		if err != nil {
			if got != nil {
				t.Fatal("request returned with an error")
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		if got.Digest() != Digest(data) {
			t.Fatal("digest is not of the input")
		}
	})
}

// FuzzReplayCacheUnmarshal: UnmarshalBinary never panics, and a state it
// accepts re-encodes to the same bytes.
func FuzzReplayCacheUnmarshal(f *testing.F) {
	c, _ := NewReplayCache(4)
	for _, id := range []string{"req-aaaaaaaaaaaaaaaa", "req-bbbbbbbbbbbbbbbb"} {
		r := base()
		r.ID = id
		signed, _ := New(r, edPriv)
		v, err := Verify(signed, clients(f), cluster, now, 0)
		if err != nil {
			f.Fatal(err)
		}
		if err := c.Admit(v, now); err != nil {
			f.Fatal(err)
		}
	}
	c.SetFloor(time.Unix(1000, 0))
	full, _ := c.MarshalBinary()
	empty, _ := (&ReplayCache{}).MarshalBinary()
	f.Add(full)
	f.Add(empty)
	f.Add(full[:len(full)-3])
	f.Add([]byte{0xa4, 0x01, 0x01, 0x02, 0x01, 0x03, 0x00, 0x04, 0xf6})
	f.Fuzz(func(t *testing.T, data []byte) {
		var c ReplayCache
		if err := c.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(data) {
			t.Fatalf("accepted state does not round-trip:\n in %x\nout %x", data, again)
		}
	})
}
