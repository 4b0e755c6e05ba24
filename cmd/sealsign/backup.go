package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sealsign/sealsign/attestation/peer"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/enclave/backup"
	"github.com/sealsign/sealsign/governance/ceremony"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/host/devcluster"
)

func init() {
	commands["backup"] = backupMain
	commands["recover"] = recoverMain
	commands["recovery-key"] = recoveryKeyMain
}

const recoveryKeyUsage = `Usage: sealsign recovery-key create --id ID [--kem x25519|mlkem768-x25519] --out FILE

Creates an offline recovery key: backups of key shares are encrypted to it
(HPKE). Run it on the offline machine that will keep the key. The private
key is written to FILE (PEM, mode 0600; an existing file is never
replaced); the public key is printed as JSON, ready for the manifest's
governance "recovery" list.

Flags:
  --id ID     the key id the manifest lists (1-64 of letters, digits,
              '.', '_', '@', '-')
  --kem KEM   x25519 (DHKEM X25519, HKDF-SHA256, ChaCha20-Poly1305; default)
              or mlkem768-x25519 (the post-quantum ML-KEM-768 + X25519
              hybrid: a backup stays secret while either holds)
  --out FILE  where to write the private key

Example:
  sealsign recovery-key create --id recovery-2 --kem mlkem768-x25519 --out /media/offline/recovery-2.key

Exit codes: 0 ok, 1 failed, 2 usage.
`

func recoveryKeyMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "create" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, recoveryKeyUsage)
			return 0
		}
		fmt.Fprint(stderr, recoveryKeyUsage)
		return 2
	}
	fs := flag.NewFlagSet("recovery-key create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	id := fs.String("id", "", "key id")
	kem := fs.String("kem", api.KEMX25519, "x25519 or mlkem768-x25519")
	out := fs.String("out", "", "private key file")
	if err := fs.Parse(args[1:]); err != nil {
		return usageExit("recovery-key create", recoveryKeyUsage, err, stdout, stderr)
	}
	if *id == "" || *out == "" || fs.NArg() != 0 {
		return usageExit("recovery-key create", recoveryKeyUsage, usagef("--id and --out are required"), stdout, stderr)
	}
	k, err := backup.GenerateRecoveryKey(*id, *kem)
	if err != nil {
		return failExit("recovery-key create", err, stderr)
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		return failExit("recovery-key create", err, stderr)
	}
	defer clear(pemBytes)
	if err := backup.WriteFileAtomic(*out, pemBytes, 0o600, true); err != nil {
		return failExit("recovery-key create", err, stderr)
	}
	printJSON(stdout, k.Public())
	return 0
}

const backupUsage = `Usage: sealsign backup create|verify [flags]

  create --key KEYID --out-dir DIR [--host URL]... [--recipient ID]...
         [--admin-key FILE]... [--epoch N]
      sign a backup ceremony (admin quorum) and have each party's enclave
      export its share of KEYID, encrypted so that opening it needs the
      recovery keys of all the recipients together; writes
      DIR/<party>.backup. Without --host: every party of the dev appliance.
      Without --recipient: every recovery key of the manifest.
  verify FILE [--manifest M] [--json]
      check a backup without decrypting it: the making enclave's
      attestation under the manifest's policy for that party, its
      signature, the header's consistency (the public share points
      interpolate to the public key; the party's point is its entry) and
      that there is a sealed data key part for every recipient named
      (opening the backup needs all of their recovery keys).

Flags:
  --host URL        a party's host API (create; repeat once per party)
  --dir DIR         dev appliance directory
  --manifest FILE   the cluster manifest (default: the dev appliance's)
  --admin-key FILE  an admin's key file (create; once per admin of the
                    quorum; default with the dev appliance: admin-1, admin-2)
  --ttl DURATION    ceremony lifetime (create; default 10m)

Examples:
  sealsign backup create --key 3f…a1 --out-dir backups/
  sealsign backup verify backups/b.backup --manifest manifest.json

Exit codes: 0 ok (verify: the backup is valid), 1 failed or invalid, 2 usage.
`

func backupMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, backupUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	verb := args[0]
	name := "backup " + verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var t target
	var hosts, recipients, adminKeys attestListFlag
	fs.Var(&hosts, "host", "party host URL (repeatable)")
	fs.StringVar(&t.dir, "dir", "", "dev appliance directory")
	fs.StringVar(&t.manifest, "manifest", "", "cluster manifest")
	fs.Var(&recipients, "recipient", "recovery key id (repeatable)")
	fs.Var(&adminKeys, "admin-key", "admin key file (repeatable)")
	keyID := fs.String("key", "", "key id")
	outDir := fs.String("out-dir", "", "output directory")
	epoch := fs.Uint64("epoch", 0, "the key's epoch (default: the one in force)")
	ttl := fs.Duration("ttl", 10*time.Minute, "ceremony lifetime")
	asJSON := fs.Bool("json", false, "machine-readable output")
	pos, err := attestParseFlags(fs, args[1:])
	if err != nil {
		return usageExit(name, backupUsage, err, stdout, stderr)
	}
	if len(hosts) > 0 {
		t.host = hosts[0]
	}
	switch verb {
	case "verify":
		if len(pos) != 1 {
			return usageExit(name, backupUsage, usagef("verify takes one FILE, got %d arguments", len(pos)), stdout, stderr)
		}
		return backupVerify(&t, pos[0], *asJSON, stdout, stderr)
	case "create":
		if len(pos) != 0 || *keyID == "" || *outDir == "" {
			return usageExit(name, backupUsage, usagef("create needs --key and --out-dir and takes no arguments"), stdout, stderr)
		}
		var ep *uint64
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "epoch" {
				ep = epoch
			}
		})
		if err := backupCreate(&t, hosts, *keyID, ep, recipients, adminKeys, *ttl, *outDir, stdout, stderr); err != nil {
			if errors.As(err, new(usageError)) {
				return usageExit(name, backupUsage, err, stdout, stderr)
			}
			return failExit(name, err, stderr)
		}
		return 0
	}
	return usageExit("backup", backupUsage, usagef("unknown verb %q", verb), stdout, stderr)
}

// manifestFor loads the manifest a backup command judges by.
func manifestFor(t *target) (*api.Manifest, error) {
	m, path, err := t.loadManifest()
	if err != nil {
		return nil, err
	}
	if m == nil {
		if path == "" {
			path, _ = t.manifestPath()
		}
		return nil, usagef("no manifest (looked at %q): pass --manifest FILE", path)
	}
	return m, nil
}

// adminsFor loads the admin keys given, or the dev appliance's when none
// is given and the command talks to it.
func backupCreate(t *target, hosts []string, keyID string, epoch *uint64, recipients, adminFiles []string, ttl time.Duration, outDir string, stdout, stderr io.Writer) error {
	m, err := manifestFor(t)
	if err != nil {
		return err
	}
	if m.Governance == nil || len(m.Governance.Recovery) == 0 {
		return fmt.Errorf("the manifest lists no recovery keys (governance.recovery): there is nobody to encrypt a backup to")
	}
	if len(recipients) == 0 {
		for _, r := range m.Governance.Recovery {
			recipients = append(recipients, r.ID)
		}
	}
	recipients = slices.Clone(recipients)
	slices.Sort(recipients)
	clients := map[string]*client.Client{}
	if len(hosts) == 0 {
		c, err := devcluster.Load(devDir(t.dir))
		if err != nil {
			return fmt.Errorf("%v (start one with 'sealsign dev up', or pass --host)", err)
		}
		for _, p := range c.Parties {
			clients[p.ID] = c.Client(p.ID)
		}
	} else {
		for _, h := range hosts {
			clients[h] = client.New(h)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var first *client.Client
	for _, cl := range clients {
		first = cl
		break
	}
	k, err := first.Key(ctx, keyID)
	if err != nil {
		return fmt.Errorf("key %q: %w", keyID, err)
	}
	admins, err := ceremonyAdmins(t, m.Governance.AdminQuorum, "backup", adminFiles, stderr)
	if err != nil {
		return err
	}
	if epoch == nil {
		epoch = &k.Epoch
	}
	cer, err := client.SignCeremony(ceremony.Ceremony{ClusterID: m.ClusterID, Kind: ceremony.KindBackup, KeyID: keyID,
		Algorithm: k.Algorithm, Epoch: *epoch, Parties: k.Parties, Threshold: k.Threshold, Recipients: recipients}, ttl, admins...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return err
	}
	for name, cl := range clients {
		file, err := cl.Backup(ctx, keyID, cer)
		if err != nil {
			return fmt.Errorf("backup on %s: %w", name, err)
		}
		v, err := backup.Verify(file, m)
		if err != nil {
			return fmt.Errorf("backup from %s does not verify: %w", name, err)
		}
		path := filepath.Join(outDir, v.Header.Party+".backup")
		if err := backup.WriteFileAtomic(path, file, 0o600, true); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: party %s, key %s epoch %d, to %s (header %x)\n", path, v.Header.Party, keyID, *epoch, strings.Join(recipients, ", "), v.HeaderHash[:8])
	}
	return nil
}

// backupReport is what verify prints.
type backupReport struct {
	Valid      bool     `json:"valid"`
	File       string   `json:"file"`
	Party      string   `json:"party,omitempty"`
	KeyID      string   `json:"key_id,omitempty"`
	Algorithm  string   `json:"algorithm,omitempty"`
	Epoch      uint64   `json:"epoch"`
	PublicKey  string   `json:"public_key,omitempty"`
	Threshold  int      `json:"threshold,omitempty"`
	Parties    []string `json:"parties,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
	Created    string   `json:"created,omitempty"`
	Ceremony   string   `json:"ceremony_id,omitempty"`
	HeaderHash string   `json:"header_hash,omitempty"`
	Module     string   `json:"attested_module,omitempty"`
	SigningKey string   `json:"enclave_signing_key,omitempty"`
	Error      string   `json:"error,omitempty"`
}

func backupVerify(t *target, path string, asJSON bool, stdout, stderr io.Writer) int {
	rep := backupReport{File: path}
	fail := func(err error) int {
		rep.Error = err.Error()
		if asJSON {
			printJSON(stdout, rep)
		}
		return failExit("backup verify", err, stderr)
	}
	m, err := manifestFor(t)
	if err != nil {
		return fail(err)
	}
	b, err := readBackupFile(path)
	if err != nil {
		return fail(err)
	}
	v, err := backup.Verify(b, m)
	if err != nil {
		return fail(err)
	}
	h := v.Header
	rep = backupReport{Valid: true, File: path, Party: h.Party, KeyID: h.KeyID, Algorithm: h.Algorithm, Epoch: h.Epoch,
		PublicKey: hex.EncodeToString(h.PublicKey), Threshold: h.Threshold, Parties: h.Parties, Recipients: h.Recipients,
		Created: time.UnixMilli(h.CreatedMS).UTC().Format(time.RFC3339), Ceremony: h.CeremonyID,
		HeaderHash: hex.EncodeToString(v.HeaderHash), Module: v.Attested.ModuleID, SigningKey: hex.EncodeToString(v.Identity.SigningKey)}
	if asJSON {
		printJSON(stdout, rep)
		return 0
	}
	fmt.Fprintf(stdout, "valid backup of party %s's share\n  key        %s (%s, epoch %d, t=%d of %s)\n  public key %s\n  recipients %s\n  made       %s by attested module %s, ceremony %s\n  header     %s\n",
		h.Party, h.KeyID, h.Algorithm, h.Epoch, h.Threshold, strings.Join(h.Parties, ","), rep.PublicKey, strings.Join(h.Recipients, ", "), rep.Created, rep.Module, h.CeremonyID, rep.HeaderHash)
	return 0
}

const recoverUsage = `Usage:
  sealsign recover --backup FILE --recovery-key KEY1 --recovery-key KEY2 …
                   [--host URL] [--manifest M] [--admin-key FILE]...
  sealsign recover --break-glass --i-understand-this-reconstructs-the-private-key
                   --backup F1 --backup F2 … --recovery-key KEY1 --recovery-key KEY2 …
                   --out FILE [--manifest M]

A backup opens only with the recovery keys of all its recipients together
(each holds one XOR part of the backup's data key): pass --recovery-key once
per recipient the backup names (sealsign backup verify lists them).

The first form restores a lost party into its new enclave (started with a
new, empty HSM token): it verifies the backup, decrypts the share here with
the recovery keys, checks it against the backup's header (including the
SHA-256 of the whole share record), fetches and
verifies the target enclave's attestation under the manifest's policy for
that party, encrypts the share to the attested enclave key (bound to the
backup and that enclave) and posts it with a recover ceremony signed by
the admins. Without --host: that party of the dev appliance.

The second form is offline break-glass: it decrypts backups of t+1
distinct parties of one key and epoch, combines the shares and writes the
whole private key to FILE (mode 0600, JSON; never printed), after checking
it matches the key's public key. It makes no network connection. It needs
--i-understand-this-reconstructs-the-private-key: afterwards the key
exists whole on this machine, which threshold signing exists to prevent.

Flags:
  --backup FILE         a backup file (break-glass: repeat)
  --recovery-key FILE   a recovery private key (repeat, once per recipient:
                        each backup needs the keys of all its recipients)
  --host URL            the lost party's host API (recover)
  --manifest FILE       the cluster manifest (default: the dev appliance's)
  --admin-key FILE      an admin's key file (recover; once per admin)
  --ttl DURATION        ceremony lifetime (default 10m)
  --out FILE            where break-glass writes the private key

Exit codes: 0 ok, 1 failed, 2 usage.
`

const breakGlassFlag = "i-understand-this-reconstructs-the-private-key"

func recoverMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	var t target
	var backups, recoveryKeys, adminKeys attestListFlag
	fs.StringVar(&t.host, "host", "", "the lost party's host URL")
	fs.StringVar(&t.dir, "dir", "", "dev appliance directory")
	fs.StringVar(&t.manifest, "manifest", "", "cluster manifest")
	fs.Var(&backups, "backup", "backup file (repeatable)")
	fs.Var(&recoveryKeys, "recovery-key", "recovery private key file (repeatable)")
	fs.Var(&adminKeys, "admin-key", "admin key file (repeatable)")
	breakGlass := fs.Bool("break-glass", false, "reconstruct the whole private key offline")
	understood := fs.Bool(breakGlassFlag, false, "acknowledge that break-glass reconstructs the private key")
	out := fs.String("out", "", "break-glass output file")
	ttl := fs.Duration("ttl", 10*time.Minute, "ceremony lifetime")
	pos, err := attestParseFlags(fs, args)
	if err != nil {
		return usageExit("recover", recoverUsage, err, stdout, stderr)
	}
	if len(pos) != 0 {
		return usageExit("recover", recoverUsage, usagef("recover takes no arguments, got %q", pos), stdout, stderr)
	}
	if len(backups) == 0 || len(recoveryKeys) == 0 {
		return usageExit("recover", recoverUsage, usagef("--backup and --recovery-key are required"), stdout, stderr)
	}
	if *breakGlass {
		switch {
		case !*understood:
			return usageExit("recover", recoverUsage, usagef("--break-glass refused without --%s: break-glass combines t+1 shares into the whole private key on this machine, outside every enclave, HSM and policy; pass the flag only if that is what the admins decided", breakGlassFlag), stdout, stderr)
		case t.host != "":
			return usageExit("recover", recoverUsage, usagef("--break-glass is offline only: drop --host"), stdout, stderr)
		case *out == "":
			return usageExit("recover", recoverUsage, usagef("--break-glass needs --out FILE (the private key is never printed)"), stdout, stderr)
		}
		if err := recoverBreakGlass(&t, backups, recoveryKeys, *out, stdout); err != nil {
			return failExit("recover --break-glass", err, stderr)
		}
		return 0
	}
	if *understood || *out != "" {
		return usageExit("recover", recoverUsage, usagef("--%s and --out are for --break-glass only", breakGlassFlag), stdout, stderr)
	}
	if len(backups) != 1 {
		return usageExit("recover", recoverUsage, usagef("recover restores one party: give one --backup (break-glass takes several)"), stdout, stderr)
	}
	if err := recoverParty(&t, backups[0], recoveryKeys, adminKeys, *ttl, stdout, stderr); err != nil {
		if errors.As(err, new(usageError)) {
			return usageExit("recover", recoverUsage, err, stdout, stderr)
		}
		return failExit("recover", err, stderr)
	}
	return 0
}

// openBackup verifies a backup file under m and opens it with the
// recovery keys of all its recipients, which rks must include (keys of
// other recipients are not used).
func openBackup(m *api.Manifest, path string, rks []*backup.RecoveryPrivateKey) (*backup.Verified, *backup.Share, error) {
	b, err := readBackupFile(path)
	if err != nil {
		return nil, nil, err
	}
	v, err := backup.Verify(b, m)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var use []*backup.RecoveryPrivateKey
	var missing []string
	for _, r := range v.Header.Recipients {
		i := slices.IndexFunc(rks, func(k *backup.RecoveryPrivateKey) bool { return k.ID == r })
		if i < 0 {
			missing = append(missing, r)
			continue
		}
		use = append(use, rks[i])
	}
	if len(missing) > 0 {
		ids := make([]string, len(rks))
		for i, k := range rks {
			ids[i] = k.ID
		}
		return nil, nil, fmt.Errorf("%s needs the recovery key of every one of its recipients (%s); missing %s (given %s): pass --recovery-key once per recipient",
			path, strings.Join(v.Header.Recipients, ", "), strings.Join(missing, ", "), strings.Join(ids, ", "))
	}
	s, err := v.Open(use...)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, s, nil
}

func loadRecoveryKeys(paths []string) ([]*backup.RecoveryPrivateKey, error) {
	var out []*backup.RecoveryPrivateKey
	for _, p := range paths {
		k, err := backup.LoadRecoveryKey(p)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func recoverParty(t *target, path string, rkPaths, adminFiles []string, ttl time.Duration, stdout, stderr io.Writer) error {
	m, err := manifestFor(t)
	if err != nil {
		return err
	}
	rks, err := loadRecoveryKeys(rkPaths)
	if err != nil {
		return err
	}
	v, share, err := openBackup(m, path, rks)
	if err != nil {
		return err
	}
	defer share.Clear()
	h := v.Header
	var cl *client.Client
	if t.host != "" {
		cl = client.New(t.host)
	} else {
		c, err := devcluster.Load(devDir(t.dir))
		if err != nil {
			return fmt.Errorf("%v (pass --host: the lost party's host)", err)
		}
		if _, ok := c.Party(h.Party); !ok {
			return fmt.Errorf("the dev appliance has no party %q", h.Party)
		}
		cl = c.Client(h.Party)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := verifiedIdentity(ctx, cl, m, h.Party)
	if err != nil {
		return err
	}
	sealed, err := backup.SealToEnclave(share, v.HeaderHash, id)
	if err != nil {
		return err
	}
	admins, err := ceremonyAdmins(t, m.Governance.AdminQuorum, "recover", adminFiles, stderr)
	if err != nil {
		return err
	}
	cer, err := client.SignCeremony(ceremony.Ceremony{ClusterID: m.ClusterID, Kind: ceremony.KindRecover, KeyID: h.KeyID,
		Algorithm: h.Algorithm, Epoch: h.Epoch, Parties: h.Parties, Threshold: h.Threshold, Party: h.Party}, ttl, admins...)
	if err != nil {
		return err
	}
	b, err := readBackupFile(path)
	if err != nil {
		return err
	}
	res, err := cl.Recover(ctx, h.KeyID, cer, b, sealed)
	if err != nil {
		return fmt.Errorf("recover party %q at %s: %w", h.Party, cl.BaseURL, err)
	}
	fmt.Fprintf(stdout, "party %s holds its share of key %s (epoch %d) again, public key %s\n", res.Party, res.ID, res.Epoch, res.PublicKey)
	return nil
}

// verifiedIdentity fetches the party's attestation through its host with
// a fresh nonce and verifies it as the cluster's enclaves do (the
// manifest's policy for that party, user_data = the manifest hash).
func verifiedIdentity(ctx context.Context, cl *client.Client, m *api.Manifest, party string) (api.Identity, error) {
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return api.Identity{}, err
	}
	resp, err := cl.Attestation(ctx, nonce)
	if err != nil {
		return api.Identity{}, fmt.Errorf("attestation of party %q from %s: %w", party, cl.BaseURL, err)
	}
	if resp.PartyID != party || resp.Identity.PartyID != party {
		return api.Identity{}, fmt.Errorf("%s answers as party %q (identity %q), the backup is of party %q", cl.BaseURL, resp.PartyID, resp.Identity.PartyID, party)
	}
	mh, err := m.Hash()
	if err != nil {
		return api.Identity{}, err
	}
	pol, err := m.AttestationPolicy(party)
	if err != nil {
		return api.Identity{}, err
	}
	idb, err := api.Marshal(resp.Identity)
	if err != nil {
		return api.Identity{}, err
	}
	if _, err := peer.Verify(resp.Document, pol, peer.Expect{Nonce: nonce, UserData: mh, PublicKey: idb}, time.Now(), 5*time.Minute); err != nil {
		return api.Identity{}, fmt.Errorf("party %q's enclave at %s does not attest under the manifest: %w", party, cl.BaseURL, err)
	}
	return resp.Identity, nil
}

// breakGlassKey is the file break-glass writes.
type breakGlassKey struct {
	KeyID     string   `json:"key_id"`
	Algorithm string   `json:"algorithm"`
	Epoch     uint64   `json:"epoch"`
	PublicKey string   `json:"public_key"`
	Parties   []string `json:"from_parties"`
	// PrivateKey is the 32-byte scalar, hex, big-endian: for secp256k1
	// the usual private key; for Ed25519 the secret scalar s with public
	// key s·B (a threshold key has no RFC 8032 seed).
	PrivateKey string `json:"private_key"`
	Encoding   string `json:"private_key_encoding"`
}

func recoverBreakGlass(t *target, paths, rkPaths []string, out string, stdout io.Writer) error {
	m, err := manifestFor(t)
	if err != nil {
		return err
	}
	rks, err := loadRecoveryKeys(rkPaths)
	if err != nil {
		return err
	}
	var vs []*backup.Verified
	var ss []*backup.Share
	defer func() {
		for _, s := range ss {
			s.Clear()
		}
	}()
	for _, p := range paths {
		v, s, err := openBackup(m, p, rks)
		if err != nil {
			return err
		}
		vs, ss = append(vs, v), append(ss, s)
	}
	r, err := backup.Reconstruct(vs, ss)
	if err != nil {
		return err
	}
	defer r.Clear()
	enc := "secp256k1 private key, 32 bytes big-endian"
	if r.Algorithm == api.AlgEdDSAEd25519 {
		enc = "ed25519 secret scalar s (public key s·B), 32 bytes big-endian; not an RFC 8032 seed"
	}
	doc := breakGlassKey{KeyID: r.KeyID, Algorithm: r.Algorithm, Epoch: r.Epoch, PublicKey: hex.EncodeToString(r.PublicKey),
		Parties: r.Parties, PrivateKey: hex.EncodeToString(r.Scalar), Encoding: enc}
	b, err := json.MarshalIndent(doc, "", "  ")
	doc.PrivateKey = ""
	if err != nil {
		return err
	}
	defer clear(b)
	if err := backup.WriteFileAtomic(out, append(b, '\n'), 0o600, true); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reconstructed key %s (%s, epoch %d) from the backups of %s; it matches public key %x\nwrote the private key to %s (mode 0600)\n",
		r.KeyID, r.Algorithm, r.Epoch, strings.Join(r.Parties, ", "), r.PublicKey, out)
	return nil
}

// readBackupFile reads a backup file, at most backup.MaxSize bytes.
func readBackupFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, backup.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > backup.MaxSize {
		return nil, fmt.Errorf("%s is larger than %d KiB: not a backup", path, backup.MaxSize>>10)
	}
	return data, nil
}
