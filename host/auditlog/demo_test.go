package auditlog_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/auditlog"
)

// The logs in testdata/demo are a real demo run's (provenance in its
// README.md): dev parties a and c attest with dev NSM documents, tpm party
// b with TPM quotes.

func demoManifest(t testing.TB) *api.Manifest {
	t.Helper()
	b, err := os.ReadFile("testdata/demo/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := api.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func demoLog(t testing.TB, m *api.Manifest, id string) (*auditlog.Log, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata/demo", id+".cbor-seq"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return auditlog.Verify(auditlog.ReadRaw(f), auditlog.Options{Manifest: m, PartyID: id})
}

func TestDemoLogs(t *testing.T) {
	m := demoManifest(t)
	want := map[string]struct {
		seq   uint64
		head  string
		kind  string
		pcr   uint
		boots int
	}{
		"a": {45, "9de5d4927b4fe390920c33b1f20368a08eb787e9cd81896fac99e06fdde3afa8", "dev", 0, 2},
		"b": {37, "c7f3540765b561a1d2a4d1025f285ad2baa7d7f778c04e5d5d33f855a0737a3d", "tpm", 23, 3},
		"c": {14, "3c782551841212de585521eea687bd885d2f5a2d646fa4d2c66fd0ab57c1e8ae", "dev", 0, 3},
	}
	var logs []*auditlog.Log
	for _, id := range []string{"a", "b", "c"} {
		l, err := demoLog(t, m, id)
		if err != nil {
			t.Fatalf("party %s: %v", id, err)
		}
		w := want[id]
		if l.Head.Seq != w.seq || hex.EncodeToString(l.Head.Hash[:]) != w.head || len(l.Boots) != w.boots {
			t.Errorf("party %s: head %d %x, %d boots; want %d %s, %d", id, l.Head.Seq, l.Head.Hash, len(l.Boots), w.seq, w.head, w.boots)
		}
		pinned := m.Parties[map[string]int{"a": 0, "b": 1, "c": 2}[id]].PCRs[fmt.Sprint(w.pcr)]
		for _, b := range l.Boots {
			if b.Kind != w.kind || b.PCR != w.pcr || b.Measurement.String() != pinned {
				t.Errorf("party %s boot seq %d: %s pcr%d %s, want %s pcr%d %s", id, b.Seq, b.Kind, b.PCR, b.Measurement, w.kind, w.pcr, pinned)
			}
		}
		logs = append(logs, l)
	}
	cr := auditlog.CrossCheck(logs)
	if !cr.OK() || cr.Requests != 9 || cr.Signed != 9 || cr.Keys != 2 || len(cr.Unchecked) != 0 || len(cr.Notes) != 0 {
		t.Fatalf("cross-party: %+v", cr)
	}
	var got []string
	for _, c := range auditlog.Ceremonies(logs, "") {
		got = append(got, c.Kind+" "+c.Transcript.String())
	}
	wantT := []string{
		"keygen e4a190a9fbeecd0d31b7beea1e24df00de10a45b2b10e93a0188b696fef1105e",
		"keygen 6e7ebd85e10c0d66ec455daca9073c126b75c7f66ee0c41b3520e3251fe31784",
		"policy-update ebab331e2ac34ecf5ad375f1ea8b2685166f72c335c0b3408edcbead70df4e47",
	}
	if strings.Join(got, "\n") != strings.Join(wantT, "\n") {
		t.Fatalf("transcripts\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantT, "\n"))
	}
}

// TestDemoLogsOtherMeasurement: the same logs under a manifest pinning
// other measurements are refused at the first boot entry, dev and tpm.
func TestDemoLogsOtherMeasurement(t *testing.T) {
	for _, tt := range []struct{ party, pcr, msg string }{{"a", "0", "pcr0"}, {"b", "23", "pcr23"}} {
		m := demoManifest(t)
		b, _ := json.Marshal(m)
		var other api.Manifest
		json.Unmarshal(b, &other)
		for i := range other.Parties {
			if other.Parties[i].ID == tt.party {
				other.Parties[i].PCRs[tt.pcr] = strings.Repeat("ab", len(other.Parties[i].PCRs[tt.pcr])/2)
			}
		}
		_, err := demoLog(t, &other, tt.party)
		checkPosition(t, err, "untrusted", 0, 1)
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("party %s: %v does not name %s", tt.party, err, tt.msg)
		}
	}
}

// Verify a party's exported log against the cluster manifest.
func Example() {
	data, _ := os.ReadFile("testdata/demo/manifest.json")
	m, err := api.ParseManifest(data)
	if err != nil {
		panic(err)
	}
	f, _ := os.Open("testdata/demo/b.cbor-seq")
	defer f.Close()
	l, err := auditlog.Verify(auditlog.ReadRaw(f), auditlog.Options{Manifest: m, PartyID: "b"})
	if err != nil {
		fmt.Println(err) // an *audit.ChainError: kind, index and seq
		return
	}
	fmt.Printf("party %s: %d entries, head seq %d %x…\n", l.PartyID, len(l.Records), l.Head.Seq, l.Head.Hash[:4])
	for _, b := range l.Boots {
		fmt.Printf("boot at seq %d: %s pcr%d %.8s…\n", b.Seq, b.Kind, b.PCR, b.Measurement)
	}
	// Output:
	// party b: 37 entries, head seq 37 c7f35407…
	// boot at seq 1: tpm pcr23 3f033962…
	// boot at seq 12: tpm pcr23 3f033962…
	// boot at seq 21: tpm pcr23 3f033962…
}
