package policy

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParseJSON: admin-authored JSON never panics the parser, and whatever
// it accepts encodes and decodes back to the same bytes.
func FuzzParseJSON(f *testing.F) {
	if b, err := os.ReadFile("testdata/default-policy.json"); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`{"format":1,"cluster_id":"demo","version":1,"issued_at":1,"not_before":1,"update_time_lock":0,"rules":[{"id":"a","effect":"allow","condition":"request.transfers.all(t, t.amount < units('10'))"}]}`))
	f.Add([]byte(`{"format":1,"cluster_id":"demo","version":1,"issued_at":1,"not_before":1,"update_time_lock":0,"rules":[{"id":"a","effect":"deny","condition":"units(request.method) > units(0)"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseJSON(data)
		if err != nil {
			return
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("accepted policy does not encode: %v", err)
		}
		q, err := DecodePolicy(enc)
		if err != nil {
			t.Fatalf("encoding of an accepted policy does not decode: %v", err)
		}
		enc2, err := q.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip differs (%v)", err)
		}
		// Evaluating any accepted policy on any fixed input never panics.
		p.Evaluate(evmInput(transferSpec{"ETH", evmA, "1", false}), NewVelocityState())
	})
}

// FuzzDecodeSigned: Accept on arbitrary bytes never panics and never
// accepts without a quorum.
func FuzzDecodeSigned(f *testing.F) {
	admins, ks := testAdmins(f)
	// A small policy keeps each execution (and minimization) cheap.
	p := newPolicy(f, Rule{ID: "r", Effect: EffectAllow, Condition: "request.fee < units(1)"})
	f.Add(signed(f, p, ks["adm-a"], ks["adm-b"]))
	f.Add(signed(f, p, ks["adm-a"]))
	f.Add(signed(f, p))
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Accept(nil, data, admins, testCluster, t0)
		if err != nil {
			return
		}
		if got == nil || got.compiled == nil {
			t.Fatal("accepted an unvalidated policy")
		}
		s, err := DecodeSigned(data)
		if err != nil {
			t.Fatalf("accepted bytes do not decode: %v", err)
		}
		if err := admins.verifyQuorum(s); err != nil {
			t.Fatalf("accepted without quorum: %v", err)
		}
	})
}

// FuzzVelocityState: sealed state from the host side of the boundary never
// panics the decoder; accepted state re-encodes to the same bytes and can
// be evaluated and recorded against.
func FuzzVelocityState(f *testing.F) {
	p := defaultPolicy(f)
	vel := NewVelocityState()
	for i := 0; i < 3; i++ {
		in := btcInput("1000", transferSpec{"BTC", btcA, "1000", false})
		in.Now = t0.Add(0)
		d := p.Evaluate(in, vel)
		if err := vel.Record(in, d); err != nil {
			f.Fatal(err)
		}
	}
	b, err := vel.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	empty, _ := NewVelocityState().MarshalBinary()
	f.Add(empty)
	f.Add([]byte{0xa3, 0x01, 0x01, 0x02, 0x00, 0x03, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v VelocityState
		if err := v.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := v.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("state does not round-trip (%v)", err)
		}
		in := btcInput("1000", transferSpec{"BTC", btcA, "1000", false})
		d := p.Evaluate(in, &v)
		if d.Outcome == Allow {
			if err := v.Record(in, d); err != nil {
				t.Fatalf("record after allow: %v", err)
			}
		}
	})
}
