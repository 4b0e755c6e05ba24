package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealsign/sealsign/host/store/pgtest"
)

// testAuditLogContract checks the AuditLog contract on an empty log.
func testAuditLogContract(t *testing.T, l AuditLog) {
	t.Helper()
	if tail, seq, err := l.AuditTail(); err != nil || tail != nil || seq != 0 {
		t.Fatalf("empty log tail = %q %d %v", tail, seq, err)
	}
	if got, err := l.Audit(1, 10); err != nil || len(got) != 0 {
		t.Fatalf("empty log Audit(1) = %q %v", got, err)
	}
	refusals := []struct {
		name  string
		seq   uint64
		after int // entries stored before the attempt
	}{
		{"zero seq on an empty log", 0, 0},
		{"gap on an empty log", 2, 0},
		{"gap", 5, 3},
		{"overwrite of the last entry", 3, 3},
		{"overwrite of an earlier entry", 1, 3},
	}
	entries := []string{"one", "two", "three"}
	stored := 0
	for _, tc := range refusals {
		for ; stored < tc.after; stored++ {
			if err := l.AppendAudit(uint64(stored+1), []byte(entries[stored])); err != nil {
				t.Fatalf("append %d: %v", stored+1, err)
			}
		}
		if err := l.AppendAudit(tc.seq, []byte("other")); !errors.Is(err, ErrAuditOrder) {
			t.Fatalf("%s: AppendAudit(%d) = %v, want ErrAuditOrder", tc.name, tc.seq, err)
		}
	}
	tail, seq, err := l.AuditTail()
	if err != nil || string(tail) != "three" || seq != 3 {
		t.Fatalf("tail = %q %d %v", tail, seq, err)
	}
	pages := []struct {
		name  string
		from  uint64
		limit int
		want  []string
	}{
		{"all", 1, 10, []string{"one", "two", "three"}},
		{"from 0 is from the start", 0, 10, []string{"one", "two", "three"}},
		{"from the middle", 2, 10, []string{"two", "three"}},
		{"limited", 1, 2, []string{"one", "two"}},
		{"past the end", 4, 10, nil},
		{"zero limit", 1, 0, nil},
	}
	for _, tc := range pages {
		got, err := l.Audit(tc.from, tc.limit)
		if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", toBytes(tc.want)) {
			t.Fatalf("%s: Audit(%d, %d) = %q %v, want %q", tc.name, tc.from, tc.limit, got, err, tc.want)
		}
	}
}

func toBytes(ss []string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, []byte(s))
	}
	return out
}

func TestBboltAuditLogContract(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testAuditLogContract(t, s)
}

func openPostgres(t *testing.T, url, party string) *Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := OpenPostgres(ctx, url, party)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestPostgres runs every PostgreSQL case against one real server (a server
// start is the expensive part); each case uses its own party's rows. The
// outage cases stop the server, so they come last.
func TestPostgres(t *testing.T) {
	url, stop, restart := pgtest.Start(t)

	t.Run("contract", func(t *testing.T) {
		testAuditLogContract(t, openPostgres(t, url, "contract"))
	})

	t.Run("parties are separate", func(t *testing.T) {
		x, y := openPostgres(t, url, "x"), openPostgres(t, url, "y")
		for i, e := range []string{"x1", "x2"} {
			if err := x.AppendAudit(uint64(i+1), []byte(e)); err != nil {
				t.Fatal(err)
			}
		}
		if err := y.AppendAudit(1, []byte("y1")); err != nil {
			t.Fatalf("party y's first entry after x's two: %v", err)
		}
		if tail, seq, err := y.AuditTail(); err != nil || string(tail) != "y1" || seq != 1 {
			t.Fatalf("y tail = %q %d %v", tail, seq, err)
		}
	})

	t.Run("concurrent appends keep seq order", func(t *testing.T) {
		// Two handles are two connections: the advisory lock, not the
		// handle's mutex, is what keeps them apart.
		logs := []*Postgres{openPostgres(t, url, "conc"), openPostgres(t, url, "conc")}
		const writers, each = 6, 15
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				l := logs[w%len(logs)]
				for k := 0; k < each; {
					_, seq, err := l.AuditTail()
					if err != nil {
						errs <- err
						return
					}
					err = l.AppendAudit(seq+1, fmt.Appendf(nil, "w%d-%02d", w, k))
					switch {
					case err == nil:
						k++
					case !errors.Is(err, ErrAuditOrder):
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := logs[0].Audit(1, 1000)
		if err != nil || len(got) != writers*each {
			t.Fatalf("Audit = %d entries, %v; want %d", len(got), err, writers*each)
		}
		next := map[int]int{}
		for i, e := range got {
			var w, k int
			if _, err := fmt.Sscanf(string(e), "w%d-%d", &w, &k); err != nil || k != next[w] {
				t.Fatalf("seq %d holds %q, want writer %d's entry %d", i+1, e, w, next[w])
			}
			next[w]++
		}
		// Every writer racing for the same seq: exactly one wins.
		_, seq, _ := logs[0].AuditTail()
		var won sync.Map
		for w := range writers {
			wg.Go(func() {
				err := logs[w%len(logs)].AppendAudit(seq+1, fmt.Appendf(nil, "race-%d", w))
				if err == nil {
					won.Store(w, true)
				} else if !errors.Is(err, ErrAuditOrder) {
					t.Errorf("racing append: %v", err)
				}
			})
		}
		wg.Wait()
		n := 0
		won.Range(func(any, any) bool { n++; return true })
		if n != 1 {
			t.Fatalf("%d racing appends of seq %d succeeded, want 1", n, seq+1)
		}
	})

	t.Run("errors hide the password", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, u := range []string{
			"postgres://u:hunter2-secret@127.0.0.1:1/db?sslmode=disable",        // nothing listens on port 1
			"postgres://u:hunter2-secret@127.0.0.1:notaport/db?sslmode=disable", // does not parse
		} {
			_, err := OpenPostgres(ctx, u, "p")
			if err == nil || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("OpenPostgres = %v; want an error without the password", err)
			}
		}
	})

	t.Run("refuses fsync off", func(t *testing.T) {
		setFsync(t, url, "off")
		defer setFsync(t, url, "on")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := OpenPostgres(ctx, url, "fsync"); err == nil || !strings.Contains(err.Error(), "fsync=off") {
			t.Fatalf("OpenPostgres on a server with fsync off = %v, want a refusal", err)
		}
	})

	t.Run("durable across a server restart", func(t *testing.T) {
		l := openPostgres(t, url, "durable")
		for i := range 5 {
			if err := l.AppendAudit(uint64(i+1), fmt.Appendf(nil, "entry %d", i+1)); err != nil {
				t.Fatal(err)
			}
		}
		restart()
		// The handle from before the restart reconnects by itself.
		if tail, seq, err := l.AuditTail(); err != nil || seq != 5 || string(tail) != "entry 5" {
			t.Fatalf("tail through the old handle = %q %d %v", tail, seq, err)
		}
		l.Close()
		if tail, seq, err := openPostgres(t, url, "durable").AuditTail(); err != nil || seq != 5 || string(tail) != "entry 5" {
			t.Fatalf("tail after restart and reopen = %q %d %v", tail, seq, err)
		}
	})

	t.Run("stopped server", func(t *testing.T) {
		l := openPostgres(t, url, "outage")
		if err := l.AppendAudit(1, []byte("before")); err != nil {
			t.Fatal(err)
		}
		stop()
		entry := []byte("ENTRY-BYTES-MUST-NOT-LEAK")
		for _, name := range []string{"append on a dropped connection", "append with the server gone"} {
			start := time.Now()
			err := l.AppendAudit(2, entry)
			if err == nil || errors.Is(err, ErrAuditOrder) || !strings.Contains(err.Error(), "postgres audit log") || !strings.Contains(err.Error(), "append entry 2") {
				t.Fatalf("%s: %v; want an error naming the postgres audit log and the entry", name, err)
			}
			if strings.Contains(err.Error(), string(entry)) {
				t.Fatalf("%s: the error quotes the entry: %v", name, err)
			}
			if d := time.Since(start); d > 11*time.Second {
				t.Fatalf("%s took %v", name, d)
			}
			t.Logf("%s: %v", name, err)
		}
		if _, _, err := l.AuditTail(); err == nil {
			t.Fatal("AuditTail with the server stopped succeeded")
		}
		restart()
		if err := l.AppendAudit(2, []byte("after")); err != nil {
			t.Fatalf("append after the server came back: %v", err)
		}
		got, err := l.Audit(1, 10)
		if err != nil || fmt.Sprintf("%q", got) != `["before" "after"]` {
			t.Fatalf("log after the outage = %q %v", got, err)
		}
	})
}

// setFsync changes the server's fsync setting and waits until new
// sessions see it.
func setFsync(t *testing.T, url, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "ALTER SYSTEM SET fsync = "+v); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		c2, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = c2.QueryRow(ctx, "SHOW fsync").Scan(&got)
		c2.Close(ctx)
		if err == nil && got == v {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fsync did not become %s", v)
}
