package store

// AuditLog is where a host keeps its party's audit entries: the embedded
// store (*Store) by default, or PostgreSQL (*Postgres) for deployments that
// keep the trail centrally. Entries are opaque bytes to the log (the
// enclave's signed, hash-chained encodings); seq numbers them from 1.
//
// Error contract:
//   - AppendAudit returns nil only once the entry is durable: a crash or
//     power loss after that keeps it. It refuses an entry that would leave
//     a gap or overwrite one with an error for which
//     errors.Is(err, ErrAuditOrder) holds, and stores nothing. Any other
//     error means the log could not be written (the store is unreachable,
//     full or read-only); whether the entry was stored is then unknown, and
//     the caller must not treat it as durable.
//   - AuditTail returns the last entry and its seq, or nil and 0 for an
//     empty log.
//   - Audit returns up to limit entries from seq from on, in seq order;
//     none (and no error) past the end.
//
// Errors never include entry bytes or credentials. Implementations are safe
// for concurrent use.
type AuditLog interface {
	AppendAudit(seq uint64, entry []byte) error
	AuditTail() ([]byte, uint64, error)
	Audit(from uint64, limit int) ([][]byte, error)
}

var (
	_ AuditLog = (*Store)(nil)
	_ AuditLog = (*Postgres)(nil)
)
