package devcluster

import (
	"os"
	"reflect"
	"testing"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/backup"
)

func TestDevRecoveryKeys(t *testing.T) {
	dir := t.TempDir()
	g, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Recovery) != 2 || g.Recovery[0].KEM != api.KEMX25519 || g.Recovery[1].KEM != api.KEMMLKEM768X25519 {
		t.Fatalf("recovery keys %+v", g.Recovery)
	}
	for _, rk := range g.Recovery {
		path := RecoveryKeyPath(dir, rk.ID)
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", path, err, st.Mode())
		}
		k, err := backup.LoadRecoveryKey(path)
		if err != nil || !reflect.DeepEqual(k.Public(), rk) {
			t.Fatalf("%s does not hold the manifest's key %s: %v", path, rk.ID, err)
		}
	}
	g2, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil)
	if err != nil || !reflect.DeepEqual(g2.Recovery, g.Recovery) {
		t.Fatalf("second run changed the recovery keys: %v", err)
	}
	os.Remove(RecoveryKeyPath(dir, "recovery-2"))
	if _, err := prepareGovernance(dir, testCluster, defaultPolicyTemplate, testNow, nil); err == nil {
		t.Fatal("a missing recovery key file went unnoticed")
	}
}
