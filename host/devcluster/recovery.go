package devcluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/backup"
)

// recoveryDir holds a dev cluster's offline recovery private keys. In
// production these live on offline machines (sealsign recovery-key
// create); a dev cluster keeps them beside it so backup and recovery can
// be tried end to end.
const recoveryDir = "recovery"

// devRecoveryKeys are every new dev cluster's recovery keys: one classical,
// one post-quantum hybrid, so both KEMs run.
var devRecoveryKeys = []struct{ id, kem string }{
	{"recovery-1", api.KEMX25519},
	{"recovery-2", api.KEMMLKEM768X25519},
}

// RecoveryKeyPath is where the dev cluster in dir keeps recovery key id.
func RecoveryKeyPath(dir, id string) string { return filepath.Join(dir, recoveryDir, id+".key") }

// prepareRecoveryKeys returns the manifest's recovery keys for the cluster
// in dir: created (mode 0600, written atomically) when the cluster is new,
// loaded when they exist. A cluster made before dev clusters had recovery
// keys keeps its manifest unchanged: none.
func prepareRecoveryKeys(dir string, fresh bool, progress io.Writer) ([]api.RecoveryKey, error) {
	rdir := filepath.Join(dir, recoveryDir)
	if _, err := os.Stat(rdir); errors.Is(err, os.ErrNotExist) && !fresh {
		return nil, nil
	}
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, fmt.Errorf("devcluster: recovery keys: %w", err)
	}
	var out []api.RecoveryKey
	var created []string
	for _, rk := range devRecoveryKeys {
		path := RecoveryKeyPath(dir, rk.id)
		k, err := backup.LoadRecoveryKey(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && fresh:
			if k, err = backup.GenerateRecoveryKey(rk.id, rk.kem); err != nil {
				return nil, fmt.Errorf("devcluster: %w", err)
			}
			b, err := k.MarshalPEM()
			if err != nil {
				return nil, fmt.Errorf("devcluster: %w", err)
			}
			err = backup.WriteFileAtomic(path, b, 0o600, true)
			clear(b)
			if err != nil {
				return nil, fmt.Errorf("devcluster: %w", err)
			}
			created = append(created, rk.id)
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("devcluster: recovery key file %s is missing, but the cluster's manifest lists it; restore the file, or start a new cluster in a fresh directory", path)
		case err != nil:
			return nil, fmt.Errorf("devcluster: %w", err)
		}
		if k.ID != rk.id || k.KEM != rk.kem {
			return nil, fmt.Errorf("devcluster: recovery key file %s holds key %q (%s), want %q (%s)", path, k.ID, k.KEM, rk.id, rk.kem)
		}
		out = append(out, k.Public())
	}
	if len(created) > 0 {
		fmt.Fprintf(progress, "  created recovery keys in %s: %s (offline keys in production: sealsign recovery-key create)\n", rdir, strings.Join(created, ", "))
	}
	return out, nil
}
