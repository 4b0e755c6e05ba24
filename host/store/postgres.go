package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgTimeout bounds every PostgreSQL operation, connecting included, so a
// server that went away gives the enclave an error instead of a hang (the
// enclave waits 30 s for an audit append).
const pgTimeout = 10 * time.Second

// pgSchema is the audit table. Every party keeping its trail on one server
// shares it; rows are keyed by party. Append-only is enforced by
// AppendAudit, not by the table: whoever administers the server can still
// rewrite rows, which the entries' hash chain and signatures reveal.
const pgSchema = `CREATE TABLE IF NOT EXISTS sealsign_audit (
	party_id  text NOT NULL,
	seq       bigint NOT NULL,
	entry     bytea NOT NULL,
	stored_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (party_id, seq)
)`

// pgUniqueViolation is SQLSTATE unique_violation.
const pgUniqueViolation = "23505"

// Postgres is one party's audit log in a PostgreSQL table (sealsign_audit),
// for deployments that keep the trail centrally. It holds one connection,
// used under a mutex; after a connection failure the next call reconnects,
// so the log works again as soon as the server is back. Appends for one
// party are serialised across connections and processes by a transaction
// advisory lock, and committed with synchronous_commit on.
type Postgres struct {
	cfg     *pgx.ConnConfig
	party   string
	lockKey string

	mu     sync.Mutex
	conn   *pgx.Conn // nil until connected, and after a failure
	closed bool
}

// OpenPostgres connects to the server at url (postgres://USER@HOST:PORT/DB;
// the password is best kept in PGPASSWORD or a pgpass file rather than the
// URL), creates the audit table if it is missing and returns partyID's log.
// It refuses a server running with fsync off, on which an acknowledged
// entry could be lost in a crash.
func OpenPostgres(ctx context.Context, url, partyID string) (*Postgres, error) {
	if partyID == "" || len(partyID) > 128 {
		return nil, fmt.Errorf("store: postgres audit log: party id %q invalid", partyID)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// The parser's message may quote the URL, password included.
		return nil, errors.New("store: postgres audit log: the URL does not parse; want postgres://USER@HOST:PORT/DATABASE (details withheld: they can quote the password)")
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "sealsign-host"
	}
	p := &Postgres{cfg: cfg, party: partyID, lockKey: "sealsign_audit/" + partyID}
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	err = p.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		var fsync string
		if err := c.QueryRow(ctx, "SELECT current_setting('fsync')").Scan(&fsync); err != nil {
			return err
		}
		if fsync != "on" {
			return fmt.Errorf("the server runs with fsync=%s, so an acknowledged audit entry could be lost in a crash; set fsync = on in postgresql.conf", fsync)
		}
		// Two hosts creating the table at once would race in the catalog.
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('sealsign_audit/schema', 0))"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, pgSchema)
			return err
		})
	})
	if err != nil {
		p.Close()
		return nil, p.errorf(err, "open %s", p.Location())
	}
	return p, nil
}

// Location names the server and database, without the password.
func (p *Postgres) Location() string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", p.cfg.User, p.cfg.Host, p.cfg.Port, p.cfg.Database)
}

// AppendAudit stores entry seq in one transaction that first takes the
// party's advisory lock and checks that seq follows the last stored entry,
// so concurrent appends cannot both pass the check. It returns once the
// commit is durable (synchronous_commit on for the transaction).
func (p *Postgres) AppendAudit(seq uint64, entry []byte) error {
	if seq == 0 || seq > math.MaxInt64 {
		return fmt.Errorf("%w: entry %d offered; seqs run from 1 to %d", ErrAuditOrder, seq, int64(math.MaxInt64))
	}
	if entry == nil {
		entry = []byte{} // nil would be NULL
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	err := p.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) // a no-op once committed
		// An acknowledged append must survive a server crash, whatever the
		// server's or the role's default is.
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", p.lockKey); err != nil {
			return err
		}
		var last int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM sealsign_audit WHERE party_id = $1", p.party).Scan(&last); err != nil {
			return err
		}
		if seq != uint64(last)+1 {
			return fmt.Errorf("%w: entry %d offered, the log ends at %d", ErrAuditOrder, seq, last)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO sealsign_audit (party_id, seq, entry) VALUES ($1, $2, $3)", p.party, int64(seq), entry); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == pgUniqueViolation {
				// Only a writer ignoring the advisory lock gets here.
				return fmt.Errorf("%w: entry %d is already stored", ErrAuditOrder, seq)
			}
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("%w: %w", errCommitUnknown, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrAuditOrder) {
		return p.errorf(err, "append entry %d", seq)
	}
	return err
}

// AuditTail returns the party's last entry and its seq (nil, 0 for an
// empty log).
func (p *Postgres) AuditTail() ([]byte, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	var seq int64
	var entry []byte
	err := p.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		err := c.QueryRow(ctx, "SELECT seq, entry FROM sealsign_audit WHERE party_id = $1 ORDER BY seq DESC LIMIT 1", p.party).Scan(&seq, &entry)
		if errors.Is(err, pgx.ErrNoRows) {
			seq, entry = 0, nil
			return nil
		}
		return err
	})
	if err != nil {
		return nil, 0, p.errorf(err, "read the last entry")
	}
	return entry, uint64(seq), nil
}

// Audit returns up to limit entries from seq from, in order.
func (p *Postgres) Audit(from uint64, limit int) ([][]byte, error) {
	if limit <= 0 || from > math.MaxInt64 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	var out [][]byte
	err := p.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		out = nil
		rows, err := c.Query(ctx, "SELECT entry FROM sealsign_audit WHERE party_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3", p.party, int64(from), limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		return nil, p.errorf(err, "read entries from %d", from)
	}
	return out, nil
}

// Close closes the connection. The log is unusable afterwards.
func (p *Postgres) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.conn.Close(ctx)
	p.conn = nil
	return err
}

var (
	errPostgresClosed = errors.New("the log is closed")
	errCommitUnknown  = errors.New("commit failed, so whether the entry is stored is unknown")
)

// with runs f on the connection, connecting first if needed. After an error
// that may have left the connection in an unknown state (anything but a
// statement the server refused, or an ordering refusal), the connection is
// dropped, so the next call starts afresh: that is how the log recovers
// once the server is back. A connection found dead on first use (the server
// restarted since the last call) is replaced and f run once more: nothing
// was committed on it, since a transaction dies with its connection, unless
// the commit itself was sent.
func (p *Postgres) with(ctx context.Context, f func(context.Context, *pgx.Conn) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPostgresClosed
	}
	for attempt := 0; ; attempt++ {
		reused := p.conn != nil && !p.conn.IsClosed()
		if !reused {
			p.conn = nil
			c, err := pgx.ConnectConfig(ctx, p.cfg.Copy())
			if err != nil {
				return err
			}
			p.conn = c
		}
		err := f(ctx, p.conn)
		if err == nil {
			return nil
		}
		var pe *pgconn.PgError
		if !p.conn.IsClosed() && (errors.As(err, &pe) || errors.Is(err, ErrAuditOrder)) {
			return err // the connection is fine; the server or the log said no
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.conn.Close(cctx)
		cancel()
		p.conn = nil
		if !reused || attempt > 0 || errors.Is(err, errCommitUnknown) || ctx.Err() != nil {
			return err
		}
	}
}

// errorf prefixes err with the log it concerns. pgx's errors name the user,
// database and address, never the password, and carry no query arguments,
// so no entry bytes.
func (p *Postgres) errorf(err error, format string, args ...any) error {
	return fmt.Errorf("store: postgres audit log (party %q): %s: %w", p.party, fmt.Sprintf(format, args...), err)
}
