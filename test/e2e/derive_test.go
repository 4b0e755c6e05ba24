package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/request"
	"github.com/sealsign/sealsign/governance/tx"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
	"github.com/sealsign/sealsign/host/server"
)

// TestDerivedKeys: the real binaries agree on a secp256k1 key's BIP-32
// children: "sealsign key derive" on two parties prints the child hdkeychain
// derives from the xpub at m, and a request under that path is signed by
// the child key.
func TestDerivedKeys(t *testing.T) {
	dir := shortDir(t)
	c := up(t, dir)
	ctx := context.Background()
	waitPreParams(t, c)
	ec, err := c.CreateKey(ctx, api.AlgECDSASecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	derive := func(party, path string) server.DeriveJSON {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir(t), "sealsign"), "key", "derive", ec.ID, "--path", path, "--host", c.Client(party).BaseURL, "--json").CombinedOutput()
		if err != nil {
			t.Fatalf("sealsign key derive on %s: %s %v", party, out, err)
		}
		var d server.DeriveJSON
		if err := json.Unmarshal(out, &d); err != nil {
			t.Fatalf("sealsign key derive --json: %v: %s", err, out)
		}
		return d
	}
	master := derive("a", "m")
	if master.PublicKey != ec.PublicKey {
		t.Fatalf("xpub at m has key %s, the threshold key is %s", master.PublicKey, ec.PublicKey)
	}
	mk, err := hdkeychain.NewKeyFromString(master.XPub)
	if err != nil {
		t.Fatal(err)
	}
	want := mk
	for _, i := range []uint32{0, 5} {
		if want, err = want.Derive(i); err != nil {
			t.Fatal(err)
		}
	}
	wantPub, _ := want.ECPubKey()
	for _, party := range []string{"a", "b"} {
		if d := derive(party, "m/0/5"); d.XPub != want.String() || d.PublicKey != hex.EncodeToString(wantPub.SerializeCompressed()) {
			t.Errorf("%s: m/0/5 is %s (%s), hdkeychain from the xpub at m says %s", party, d.XPub, d.PublicKey, want.String())
		}
	}
	if out, err := exec.Command(filepath.Join(binDir(t), "sealsign"), "key", "derive", ec.ID, "--path", "m/44'/0", "--host", c.Client("a").BaseURL).CombinedOutput(); err == nil {
		t.Errorf("hardened path accepted: %s", out)
	}

	k, err := c.GovernanceKey("treasury-app")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("e2e child m/0/5"))
	req, err := client.NewRequestAt(k, c.ClusterID(), ec.ID, request.Path{0, 5}, tx.KindRaw, digest[:], 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Client("a").Submit(ctx, req)
	if err != nil || st.State != server.StateSigned || st.Result == nil {
		t.Fatalf("signing under m/0/5: %+v %v", st, err)
	}
	r := st.Result
	if r.PublicKey != hex.EncodeToString(wantPub.SerializeCompressed()) || r.DerivationPath != "m/0/5" {
		t.Errorf("signed by %s at %q, want the child %x at m/0/5", r.PublicKey, r.DerivationPath, wantPub.SerializeCompressed())
	}
	if err := devcluster.VerifyECDSA(r.PublicKey, digest[:], r.Signatures[0], r.RecoveryIDs[0]); err != nil {
		t.Errorf("child signature: %v", err)
	}
	if err := devcluster.VerifyECDSA(ec.PublicKey, digest[:], r.Signatures[0], r.RecoveryIDs[0]); err == nil {
		t.Error("child signature verifies under the parent key")
	}
}
