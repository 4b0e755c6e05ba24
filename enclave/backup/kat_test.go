package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/enclave/api"
)

// katHeader is a fixed header; its encoding and hash below are the format's
// known answers: a change to either is a format change (append fields
// only, never renumber).
func katHeader() *Header {
	pt := func(b byte) []byte { return append([]byte{0x02}, []byte(strings.Repeat(string(rune(b)), 32))...) }
	return &Header{
		Format: FormatV2, ClusterID: "kat", ManifestHash: make([]byte, 32), KeyID: strings.Repeat("0f", 16),
		Algorithm: api.AlgECDSASecp256k1, Epoch: 2, Party: "b", Threshold: 1, Parties: []string{"a", "b", "c"},
		PublicKey: pt('p'), ShareID: []byte{2}, Point: pt('b'),
		Shares:     []PublicShare{{ShareID: []byte{1}, Point: pt('a')}, {ShareID: []byte{2}, Point: pt('b')}, {ShareID: []byte{3}, Point: pt('c')}},
		Recipients: []string{"recovery-1", "recovery-2"}, CreatedMS: 1767225600000, CeremonyID: "backup-kat",
		ShareHash: make([]byte, 32),
	}
}

func TestHeaderKnownAnswer(t *testing.T) {
	b, err := katHeader().Encode()
	if err != nil {
		t.Fatal(err)
	}
	const wantPrefix = "b1" // a map of 17 pairs
	if got := hex.EncodeToString(b[:1]); got != wantPrefix {
		t.Fatalf("header encoding starts %s, want %s", got, wantPrefix)
	}
	sum := sha256.Sum256(append([]byte("sealsign/v1/backup/header\x00"), b...))
	if got := hex.EncodeToString(sum[:]); got != hex.EncodeToString(HeaderHash(b)) {
		t.Fatalf("HeaderHash is not the documented digest")
	}
	if got := hex.EncodeToString(HeaderHash(b)); got != katHeaderHash {
		t.Fatalf("header hash %s, want %s (a format change?)\nencoding %x", got, katHeaderHash, b)
	}
}

// katHeaderHash is SHA-256("sealsign/v1/backup/header" ‖ 0x00 ‖ encoding), recorded
// from the first format 2 implementation (format 2 added ShareHash, key 17).
const katHeaderHash = "a8bd33e0dc8920f3c43d807479d17cbba545496b98d87422c0943ef7f4f9bf8a"
