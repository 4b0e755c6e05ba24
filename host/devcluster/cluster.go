// Package devcluster runs a whole appliance on one machine: a dev CA, one
// SoftHSM token per party, a manifest pinning the enclave binary's
// measurement, and one sealsign-host (with its dev enclave) per party, each
// a real process talking over real sockets.
package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sealsign/sealsign/attestation/devnsm"
	attesttpm "github.com/sealsign/sealsign/attestation/tpm"
	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/host/client"
	"github.com/sealsign/sealsign/hsm/pkcs11/softhsm"
	"github.com/sealsign/sealsign/hsm/tpm"
)

// Options configure a dev cluster.
type Options struct {
	Dir       string
	Parties   []string // default a, b, c
	Threshold int      // default 1 (2-of-3)
	// BinDir holds sealsign-host and sealsign-enclave (default: next to the
	// running executable, then $PATH).
	BinDir string
	// PreParamsPool is each enclave's pool goal (default 1); NoPreParams
	// disables the pool (no ECDSA keygen; nothing generated in the background).
	PreParamsPool     int
	NoPreParams       bool
	PreParamsNoRefill bool
	// InsecurePreParamsFixture passes public pre-parameter sets to every
	// enclave (tests only).
	InsecurePreParamsFixture string
	// Kinds maps party ids to their kind: "dev" (default: SoftHSM sealing,
	// dev NSM attestation) or "tpm" (TPM simulator sealing under a PCR
	// policy, TPM quote attestation).
	Kinds map[string]string
	// AuditStores maps party ids to a postgres:// URL where that party's
	// host keeps its audit log (sealsign-host --audit-store); the others
	// keep it in their embedded store. Not saved in the cluster state: a
	// restart from another process uses the embedded store unless given
	// again (and the enclave then refuses the shorter log).
	AuditStores map[string]string
	// PolicyJSON is the genesis policy template (default: policy.json in
	// this package): a policy JSON document whose cluster_id, issued_at
	// and not_before are set when the cluster is first created. Later Ups
	// keep the genesis signed then.
	PolicyJSON []byte
	Progress   io.Writer
}

// PartyState is one running party.
type PartyState struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	PID      int    `json:"pid"`
	Log      string `json:"log"`
	Store    string `json:"store"`
	Kind     string `json:"kind"`
	HSMURI   string `json:"hsm_uri,omitempty"`
	TPM      string `json:"tpm,omitempty"` // simulator:SEEDFILE for tpm parties
	SoftHSM  string `json:"softhsm_conf"`
	Listen   string `json:"listen"`
	Enclave  string `json:"enclave"`
	TokenLbl string `json:"token_label"`
	// EnclaveBin overrides the enclave binary for this party (tests and
	// the demo start one party with a different build).
	EnclaveBin string `json:"enclave_bin,omitempty"`
}

// Cluster is the state file of a running dev cluster.
type Cluster struct {
	Dir      string       `json:"dir"`
	Manifest string       `json:"manifest"`
	Parties  []PartyState `json:"parties"`
	opts     Options
}

const stateFile = "cluster.json"

func (o *Options) defaults() error {
	if o.Dir == "" {
		return errors.New("devcluster: no directory")
	}
	if len(o.Parties) == 0 {
		o.Parties = []string{"a", "b", "c"}
	}
	if o.Threshold == 0 {
		o.Threshold = 1
	}
	if o.PreParamsPool == 0 {
		o.PreParamsPool = 1
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	for id, k := range o.Kinds {
		if k != "dev" && k != "tpm" {
			return fmt.Errorf("devcluster: party %q: kind %q unsupported here (want dev or tpm)", id, k)
		}
		if !slices.Contains(o.Parties, id) {
			return fmt.Errorf("devcluster: kind given for %q, which is not a party (%s)", id, strings.Join(o.Parties, ", "))
		}
	}
	for id, u := range o.AuditStores {
		if !slices.Contains(o.Parties, id) {
			return fmt.Errorf("devcluster: audit store given for %q, which is not a party (%s)", id, strings.Join(o.Parties, ", "))
		}
		if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
			return fmt.Errorf("devcluster: party %q: audit store must be a postgres:// URL", id)
		}
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err == nil {
			dir := filepath.Dir(exe)
			if _, err := os.Stat(filepath.Join(dir, "sealsign-host")); err == nil {
				o.BinDir = dir
			}
		}
		if o.BinDir == "" {
			if p, err := exec.LookPath("sealsign-host"); err == nil {
				o.BinDir = filepath.Dir(p)
			}
		}
		if o.BinDir == "" {
			return errors.New("devcluster: sealsign-host not found next to this binary or on $PATH (run 'make build', or pass --bin-dir)")
		}
	}
	for _, b := range []string{"sealsign-host", "sealsign-enclave"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return fmt.Errorf("devcluster: %s missing in %s (run 'make build')", b, o.BinDir)
		}
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = abs
	return nil
}

// Up creates what is missing in o.Dir (CA, tokens, PINs, governance keys
// and genesis policy, manifest) and starts every party, waiting until each
// answers its health check. Existing tokens, stores and governance are
// reused, so Up after Down restarts from sealed state under the same
// manifest. Signing is governed: see GovernanceKey for the keys.
func Up(ctx context.Context, o Options) (*Cluster, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	if c, err := Load(o.Dir); err == nil {
		if c.anyRunning() {
			return nil, fmt.Errorf("devcluster: a cluster is already running in %s (sealsign dev down --dir %s)", o.Dir, o.Dir)
		}
		// A restart keeps each party's kind: its sealed state lives in
		// that kind's hardware.
		if o.Kinds == nil {
			o.Kinds = map[string]string{}
			for _, p := range c.Parties {
				if p.Kind != "" {
					o.Kinds[p.ID] = p.Kind
				}
			}
		}
		for _, p := range c.Parties {
			if k := o.Kinds[p.ID]; p.Kind != "" && k != "" && k != p.Kind {
				return nil, fmt.Errorf("devcluster: party %s in %s is of kind %s; it cannot restart as %s (its shares are sealed in its %s)", p.ID, o.Dir, p.Kind, k, p.Kind)
			}
		}
	}
	caCert, caKey := filepath.Join(o.Dir, "ca", "root.pem"), filepath.Join(o.Dir, "ca", "root.key")
	if _, err := os.Stat(caKey); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(o.Progress, "  creating dev NSM root CA (P-384)")
		if err := os.MkdirAll(filepath.Dir(caCert), 0o700); err != nil {
			return nil, err
		}
		ca, err := devnsm.NewCA(rand.Reader, time.Now())
		if err != nil {
			return nil, err
		}
		if err := ca.WriteFiles(caCert, caKey); err != nil {
			return nil, err
		}
	}
	rootPEM, err := os.ReadFile(caCert)
	if err != nil {
		return nil, err
	}
	enclaveBin := filepath.Join(o.BinDir, "sealsign-enclave")
	pcr0, err := devnsm.MeasureFile(enclaveBin)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: o.Dir, Manifest: filepath.Join(o.Dir, "manifest.json"), opts: o}
	tmpl := o.PolicyJSON
	if tmpl == nil {
		tmpl = defaultPolicyTemplate
	}
	gov, err := prepareGovernance(o.Dir, clusterID(o.Dir), tmpl, time.Now(), o.Progress)
	if err != nil {
		return nil, err
	}
	m := api.Manifest{Version: 1, ClusterID: clusterID(o.Dir), Threshold: o.Threshold, DevRoots: []string{string(rootPEM)}, Governance: gov}
	ports, err := freePorts(len(o.Parties))
	if err != nil {
		return nil, err
	}
	for i, id := range o.Parties {
		ps, err := preparePartyDir(o, id, ports[i])
		if err != nil {
			return nil, err
		}
		c.Parties = append(c.Parties, ps)
		mp := api.ManifestParty{ID: id, Kind: ps.Kind, PCRs: map[string]string{"0": hex.EncodeToString(pcr0)}}
		if ps.Kind == "tpm" {
			// The TPM measures the enclave binary into MeasurePCR; its AK
			// is pinned now, at enrolment.
			ak, err := tpmAK(ps.TPM)
			if err != nil {
				return nil, err
			}
			mp.AK = hex.EncodeToString(ak)
			mp.PCRs = map[string]string{fmt.Sprint(api.TPMMeasurePCR): hex.EncodeToString(tpm.ExpectedPCR(pcr0))}
			fmt.Fprintf(o.Progress, "  party %s is a tpm party: TPM simulator sealing under pcr%d, attestation key %x…\n", id, api.TPMMeasurePCR, ak[len(ak)-8:])
		}
		m.Parties = append(m.Parties, mp)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(c.Manifest, mb, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "  manifest pins enclave pcr0 %x…\n", pcr0[:12])
	for i := range c.Parties {
		if err := c.start(i, caCert, caKey); err != nil {
			c.Down()
			return nil, err
		}
	}
	if err := c.save(); err != nil {
		c.Down()
		return nil, err
	}
	for i := range c.Parties {
		if err := c.waitHealthy(ctx, i); err != nil {
			c.Down()
			return nil, err
		}
	}
	return c, nil
}

func preparePartyDir(o Options, id string, port int) (PartyState, error) {
	dir := filepath.Join(o.Dir, "party-"+id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return PartyState{}, err
	}
	ps := PartyState{
		ID:      id,
		Kind:    "dev",
		Listen:  fmt.Sprintf("127.0.0.1:%d", port),
		URL:     fmt.Sprintf("http://127.0.0.1:%d", port),
		Log:     filepath.Join(dir, "host.log"),
		Store:   filepath.Join(dir, "store.db"),
		Enclave: "unix:" + filepath.Join(dir, "enclave.sock"),
	}
	if o.Kinds[id] == "tpm" {
		ps.Kind, ps.TPM = "tpm", "simulator:"+filepath.Join(dir, "tpm-sim.seed")
		return ps, nil
	}
	env, err := softhsm.Setup(dir)
	if err != nil {
		return PartyState{}, err
	}
	label := "sealsign-" + id
	pinFile := filepath.Join(dir, "user.pin")
	if _, err := os.Stat(pinFile); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(o.Progress, "  initialising SoftHSM token %q\n", label)
		pin, so := randomPIN(), randomPIN()
		if err := env.InitToken(label, so, pin); err != nil {
			return PartyState{}, err
		}
		if err := writeFileAtomic(pinFile, []byte(pin+"\n"), 0o600); err != nil {
			return PartyState{}, err
		}
	}
	ps.HSMURI, ps.SoftHSM, ps.TokenLbl = env.URI(label, pinFile), env.ConfPath, label
	return ps, nil
}

// tpmAK derives the attestation key of the simulated TPM kept in seedSpec
// ("simulator:SEEDFILE", created on first use): the same seed gives the
// enclave the same AK, so the manifest can pin it before the party starts.
func tpmAK(seedSpec string) ([]byte, error) {
	t, err := tpm.OpenSimulator(strings.TrimPrefix(seedSpec, "simulator:"))
	if err != nil {
		return nil, err
	}
	defer t.Close()
	ak, err := attesttpm.NewAK(t)
	if err != nil {
		return nil, err
	}
	defer ak.Close()
	return ak.PublicBytes(), nil
}

func randomPIN() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *Cluster) start(i int, caCert, caKey string) error {
	p := &c.Parties[i]
	enclaveBin := filepath.Join(c.opts.BinDir, "sealsign-enclave")
	if p.EnclaveBin != "" {
		enclaveBin = p.EnclaveBin
	}
	args := []string{
		"--party", p.ID, "--manifest", c.Manifest, "--store", p.Store, "--listen", p.Listen,
		"--enclave", p.Enclave, "--launch-enclave", enclaveBin,
	}
	if p.SoftHSM != "" {
		args = append(args, "--enclave-env", "SOFTHSM2_CONF="+p.SoftHSM)
	}
	if u := c.opts.AuditStores[p.ID]; u != "" {
		args = append(args, "--audit-store", u)
	}
	for _, q := range c.Parties {
		if q.ID != p.ID {
			args = append(args, "--peer", q.ID+"="+q.URL)
		}
	}
	pool := c.opts.PreParamsPool
	if c.opts.NoPreParams {
		pool = 0
	}
	eargs := []string{"--preparams-pool", fmt.Sprint(pool)}
	if p.Kind == "tpm" {
		eargs = append(eargs, "--tpm", p.TPM)
	} else {
		eargs = append(eargs, "--hsm", p.HSMURI, "--dev-ca-cert", caCert, "--dev-ca-key", caKey)
	}
	if c.opts.PreParamsNoRefill {
		eargs = append(eargs, "--preparams-no-refill")
	}
	if c.opts.InsecurePreParamsFixture != "" {
		eargs = append(eargs, "--insecure-preparams-fixture", c.opts.InsecurePreParamsFixture,
			"--fixture-stride", fmt.Sprint(len(c.Parties)), "--fixture-offset", fmt.Sprint(i))
	}
	for _, a := range eargs {
		args = append(args, "--enclave-arg", a)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(c.opts.BinDir, "sealsign-host"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: the host and its enclave outlive this command and
	// are stopped together by Down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("devcluster: start host %s: %w", p.ID, err)
	}
	p.PID = cmd.Process.Pid
	go cmd.Wait() // reap if it exits while we run
	return nil
}

func (c *Cluster) waitHealthy(ctx context.Context, i int) error {
	p := c.Parties[i]
	cl := client.New(p.URL)
	deadline := time.Now().Add(90 * time.Second)
	for {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		h, err := cl.Health(hctx)
		cancel()
		if err == nil && h.Status == "ok" {
			return nil
		}
		if !alive(p.PID) {
			return fmt.Errorf("devcluster: party %s failed to start:\n%s", p.ID, tail(p.Log, 15))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("devcluster: party %s not healthy after 90s (last error: %v); log:\n%s", p.ID, err, tail(p.Log, 15))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Load reads the state of a cluster started in dir.
func Load(dir string) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("devcluster: no cluster in %s: %w", dir, err)
	}
	c := new(Cluster)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("devcluster: %s: %w", stateFile, err)
	}
	return c, nil
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.Dir, stateFile), b, 0o600)
}

// Party returns a party's state.
func (c *Cluster) Party(id string) (PartyState, bool) {
	for _, p := range c.Parties {
		if p.ID == id {
			return p, true
		}
	}
	return PartyState{}, false
}

// Client returns an API client for a party.
func (c *Cluster) Client(id string) *client.Client {
	p, _ := c.Party(id)
	return client.New(p.URL)
}

func (c *Cluster) anyRunning() bool {
	for _, p := range c.Parties {
		if alive(p.PID) {
			return true
		}
	}
	return false
}

// Stop stops one party (its host and enclave).
func (c *Cluster) Stop(id string) error {
	for i := range c.Parties {
		if c.Parties[i].ID == id {
			stopGroup(c.Parties[i].PID)
			c.Parties[i].PID = 0
			return c.save()
		}
	}
	return fmt.Errorf("devcluster: no party %q", id)
}

// Restart stops one party and starts it again with enclaveBin (empty: the
// cluster's enclave binary), keeping its token, store and address.
func (c *Cluster) Restart(ctx context.Context, id, enclaveBin string) error {
	for i := range c.Parties {
		if c.Parties[i].ID != id {
			continue
		}
		stopGroup(c.Parties[i].PID)
		c.Parties[i].EnclaveBin = enclaveBin
		if err := c.start(i, filepath.Join(c.Dir, "ca", "root.pem"), filepath.Join(c.Dir, "ca", "root.key")); err != nil {
			return err
		}
		if err := c.save(); err != nil {
			return err
		}
		return c.waitHealthy(ctx, i)
	}
	return fmt.Errorf("devcluster: no party %q", id)
}

// Down stops every party.
func (c *Cluster) Down() error {
	for i := range c.Parties {
		stopGroup(c.Parties[i].PID)
		c.Parties[i].PID = 0
	}
	if _, err := os.Stat(filepath.Join(c.Dir, stateFile)); err == nil {
		return c.save()
	}
	return nil
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie (exited, not yet reaped by its parent) counts as gone.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	return true
}

// stopGroup sends SIGTERM to the process group and waits up to 10 s, then kills it.
func stopGroup(pid int) {
	if pid <= 0 || !alive(pid) {
		return
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return "    " + strings.Join(ls, "\n    ")
}

// writeFileAtomic writes via a temp file, fsync and rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
