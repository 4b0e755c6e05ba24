// Package pgtest runs a real PostgreSQL server for tests: initdb into a
// test's temporary directory, a random free TCP port on 127.0.0.1, trust
// authentication, fsync left on. Tests can stop it mid-test and start it
// again on the same data, to see what an outage does.
//
// PostgreSQL refuses to run as root. When the test runs as root (CI, dev
// containers), initdb and pg_ctl run as the "postgres" OS user (created by
// Debian's postgresql package, or here if missing) through runuser, and the
// server's directories are handed to that user.
//
// When PostgreSQL is not installed the test is skipped with the install
// hint, unless SEALSIGN_REQUIRE_POSTGRES=1 (make test sets it), which makes
// it fail instead.
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RequireEnv, set to 1, turns a missing PostgreSQL into a test failure.
const RequireEnv = "SEALSIGN_REQUIRE_POSTGRES"

// osUser is who runs the server when the test runs as root.
const osUser = "postgres"

const installHint = "install PostgreSQL (make deps, or apt-get install postgresql)"

// Start runs a fresh PostgreSQL server for t and returns its URL (superuser
// postgres, database postgres, no password), stop (pg_ctl stop -m fast; a
// no-op when stopped) and restart (starts it again on the same data and
// port; stops it first if running). The server is stopped and its data
// removed when t ends. Starting one costs about a second: share one server
// across a package's tests, each using its own party id or table rows.
func Start(t testing.TB) (url string, stop func(), restart func()) {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		msg := fmt.Sprintf("pgtest: PostgreSQL not found (%v): %s", err, installHint)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s; %s=1 requires it", msg, RequireEnv)
		}
		t.Skip(msg)
	}
	s := &server{t: t, bin: bin}
	s.setup()
	s.start()
	t.Cleanup(func() {
		if err := s.stopErr(); err != nil {
			t.Errorf("pgtest: stop at cleanup: %v", err)
		}
	})
	return s.url, s.stop, s.restart
}

type server struct {
	t    testing.TB
	bin  string // directory holding initdb and pg_ctl
	url  string
	data string
	log  string
	// asPostgres is set when running as root: commands go through runuser.
	asPostgres bool

	mu      sync.Mutex
	running bool
}

func (s *server) setup() {
	t := s.t
	t.Helper()
	base := t.TempDir()
	s.data, s.log = filepath.Join(base, "data"), filepath.Join(base, "server.log")
	sock := filepath.Join(base, "sock")
	// A unix socket path is limited to about 107 bytes; long test names
	// make the temp dir too deep.
	if len(sock) > 80 {
		d, err := os.MkdirTemp("", "pgs")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		sock = d
	} else if err := os.Mkdir(sock, 0o700); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)

	if os.Geteuid() == 0 {
		s.asPostgres = true
		uid, gid := postgresUser(t)
		// t.TempDir's parent is private to root; the postgres user only
		// needs to pass through it.
		for d := filepath.Dir(base); strings.HasPrefix(d, filepath.Clean(os.TempDir())+string(filepath.Separator)); d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				os.Chmod(d, fi.Mode().Perm()|0o001)
			}
		}
		for _, d := range []string{base, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatalf("pgtest: hand %s to the %s user: %v", d, osUser, err)
			}
		}
		if out, err := s.command("test", "-w", base).CombinedOutput(); err != nil {
			t.Fatalf("pgtest: the %s OS user cannot write %s (%v %s): run the tests with TMPDIR set to a directory every user can traverse, such as /tmp", osUser, base, err, bytes.TrimSpace(out))
		}
	}
	// --no-sync only skips syncing the fresh data directory; the server
	// itself runs with fsync on.
	if out, err := s.command(filepath.Join(s.bin, "initdb"), "-D", s.data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\n# pgtest\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
		"fsync = on\nsynchronous_commit = on\nmax_connections = 30\nshared_buffers = 32MB\n", port, sock)
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("pgtest: postgresql.conf: %v", err)
	}
}

func (s *server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	out, err := s.command(filepath.Join(s.bin, "pg_ctl"), "-D", s.data, "-l", s.log, "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		logText, _ := os.ReadFile(s.log)
		s.t.Fatalf("pgtest: pg_ctl start: %v\n%s\nserver log:\n%s", err, out, lastLines(logText, 20))
	}
	s.running = true
}

func (s *server) stop() {
	s.t.Helper()
	if err := s.stopErr(); err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
}

func (s *server) stopErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	out, err := s.command(filepath.Join(s.bin, "pg_ctl"), "-D", s.data, "-m", "fast", "-w", "-t", "30", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	s.running = false
	return nil
}

func (s *server) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// command runs name as the postgres OS user when the test runs as root.
func (s *server) command(name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	switch {
	case !s.asPostgres:
		cmd = exec.Command(name, args...)
	case haveRunuser():
		cmd = exec.Command("runuser", append([]string{"-u", osUser, "--", name}, args...)...)
	default:
		q := []string{shellQuote(name)}
		for _, a := range args {
			q = append(q, shellQuote(a))
		}
		cmd = exec.Command("su", "-s", "/bin/sh", osUser, "-c", strings.Join(q, " "))
	}
	// The server's own directory: the postgres user may not be able to
	// enter the test's working directory.
	cmd.Dir = filepath.Dir(s.data)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	return cmd
}

func haveRunuser() bool {
	_, err := exec.LookPath("runuser")
	return err == nil
}

// postgresUser returns the postgres OS user's uid and gid, creating the
// user when PostgreSQL was installed without it.
func postgresUser(t testing.TB) (int, int) {
	t.Helper()
	u, err := user.Lookup(osUser)
	if err != nil {
		out, aerr := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", osUser).CombinedOutput()
		if aerr != nil {
			t.Fatalf("pgtest: running as root, and PostgreSQL refuses to: no %q OS user to run it as, and useradd failed: %v %s", osUser, aerr, bytes.TrimSpace(out))
		}
		if u, err = user.Lookup(osUser); err != nil {
			t.Fatalf("pgtest: %q OS user created but not found: %v", osUser, err)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("pgtest: %q OS user has uid %q gid %q", osUser, u.Uid, u.Gid)
	}
	return uid, gid
}

// findBin finds the directory holding initdb and pg_ctl: $PATH, Debian's
// /usr/lib/postgresql/VERSION/bin (newest first), /usr/local/bin and the
// source build's /usr/local/pgsql/bin.
func findBin() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(debian, func(i, j int) bool { return pgVersion(debian[i]) > pgVersion(debian[j]) })
	dirs = append(dirs, debian...)
	dirs = append(dirs, "/usr/local/bin", "/usr/local/pgsql/bin")
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no initdb and pg_ctl in $PATH, /usr/lib/postgresql/*/bin, /usr/local/bin or /usr/local/pgsql/bin")
}

// pgVersion reads the major version from /usr/lib/postgresql/VERSION/bin.
func pgVersion(dir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
