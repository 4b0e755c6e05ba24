package auditlog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/sealsign/sealsign/enclave/audit"
)

// ErrRawFormat is wrapped by every error about the framing of an audit
// file (as opposed to the entries in it, which Verify judges).
var ErrRawFormat = errors.New("auditlog: malformed audit file")

// RawExt is the file name extension of raw audit files.
const RawExt = ".cbor-seq"

// WriteRaw writes entries as a raw audit file: a CBOR sequence (RFC 8742)
// of the SignedEntry encodings exactly as stored, nothing between them.
// It is what ReadRaw, ReadFile and "sealsign audit verify --file" read.
func WriteRaw(w io.Writer, entries [][]byte) error {
	bw := bufio.NewWriter(w)
	for i, e := range entries {
		if n, err := itemLen(e); err != nil || n != len(e) {
			return fmt.Errorf("auditlog: entry %d is not one CBOR data item", i)
		}
		if _, err := bw.Write(e); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// maxNesting bounds CBOR nesting in a raw file; a SignedEntry has depth 1.
const maxNesting = 16

// ReadRaw yields the entries of a raw audit file (WriteRaw), one CBOR
// data item each, at most audit.MaxEntrySize bytes, definite lengths only
// (canonical CBOR has no others). It checks framing only; Verify checks
// the entries. A framing error wraps ErrRawFormat and names the entry and
// byte offset; after any error it stops.
func ReadRaw(r io.Reader) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		ir := &itemReader{r: bufio.NewReaderSize(r, 64<<10)}
		for i := 0; ; i++ {
			if _, err := ir.r.Peek(1); err == io.EOF {
				return
			}
			start := ir.off
			ir.buf = nil
			if err := ir.item(0); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					err = fmt.Errorf("%w: file ends inside entry %d (byte offset %d): truncated", ErrRawFormat, i, start)
				} else if fe, ok := err.(*framingError); ok {
					err = fmt.Errorf("%w: entry %d (byte offset %d): %s", ErrRawFormat, i, start, fe.msg)
				} else {
					err = fmt.Errorf("auditlog: read entry %d: %w", i, err)
				}
				yield(nil, err)
				return
			}
			if !yield(ir.buf, nil) {
				return
			}
		}
	}
}

type itemReader struct {
	r   *bufio.Reader
	buf []byte
	off int64
}

// framingError is a framing fault inside one item; ReadRaw adds where.
type framingError struct{ msg string }

func (e *framingError) Error() string        { return e.msg }
func (e *framingError) Is(target error) bool { return target == ErrRawFormat }

func errFraming(format string, a ...any) error { return &framingError{fmt.Sprintf(format, a...)} }

func (ir *itemReader) read(n uint64) ([]byte, error) {
	if n > uint64(audit.MaxEntrySize-len(ir.buf)) {
		return nil, errFraming("entry larger than %d bytes", audit.MaxEntrySize)
	}
	start := len(ir.buf)
	ir.buf = append(ir.buf, make([]byte, n)...)
	if _, err := io.ReadFull(ir.r, ir.buf[start:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	ir.off += int64(n)
	return ir.buf[start:], nil
}

// item reads one CBOR data item (RFC 8949 §3) into ir.buf.
func (ir *itemReader) item(depth int) error {
	if depth > maxNesting {
		return errFraming("nested deeper than %d", maxNesting)
	}
	h, err := ir.read(1)
	if err != nil {
		return err
	}
	major, info := h[0]>>5, h[0]&0x1f
	var arg uint64
	switch {
	case info < 24:
		arg = uint64(info)
	case info <= 27:
		b, err := ir.read(1 << (info - 24))
		if err != nil {
			return err
		}
		var full [8]byte
		copy(full[8-len(b):], b)
		arg = binary.BigEndian.Uint64(full[:])
	case info == 31:
		return errFraming("indefinite-length item (not canonical CBOR)")
	default:
		return errFraming("reserved additional information %d", info)
	}
	switch major {
	case 0, 1, 7: // integers, simple values and floats: the head is all
		return nil
	case 2, 3:
		_, err := ir.read(arg)
		return err
	case 4, 5:
		n := arg
		if major == 5 {
			if n > audit.MaxEntrySize {
				return errFraming("map of %d pairs", n)
			}
			n *= 2
		}
		// Every item takes at least a byte, so a count beyond the size
		// limit fails here instead of looping.
		if n > audit.MaxEntrySize {
			return errFraming("array of %d items", n)
		}
		for range n {
			if err := ir.item(depth + 1); err != nil {
				return err
			}
		}
		return nil
	default: // 6, a tag: one item follows
		return ir.item(depth + 1)
	}
}

// itemLen is the length of the first CBOR data item in b.
func itemLen(b []byte) (int, error) {
	ir := &itemReader{r: bufio.NewReader(bytes.NewReader(b))}
	if err := ir.item(0); err != nil {
		return 0, err
	}
	return len(ir.buf), nil
}

// maxJSONFile bounds a JSON audit file read into memory (a host answer
// or an export).
const maxJSONFile = 1 << 30

// ReadFile yields the entries of an audit file of any form sealsign writes,
// detected from its first byte: a raw file (WriteRaw), a saved host
// answer (GET /v1/audit: {"party_id":…,"entries":[base64…]}), or a JSON
// Lines export (each line's "raw"). A JSON Lines export filtered by time,
// key, client or ceremony is not a whole log: it verifies only when
// nothing was filtered out.
func ReadFile(r io.Reader) iter.Seq2[[]byte, error] {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.Peek(1)
		if err != nil || !isSpace(b[0]) {
			break
		}
		br.ReadByte()
	}
	if b, err := br.Peek(1); err != nil || b[0] != '{' {
		return ReadRaw(br)
	}
	return func(yield func([]byte, error) bool) {
		dec := json.NewDecoder(io.LimitReader(br, maxJSONFile))
		for line := 1; ; line++ {
			var obj struct {
				Entries *[]string `json:"entries"`
				Raw     string    `json:"raw"`
			}
			if err := dec.Decode(&obj); err == io.EOF {
				return
			} else if err != nil {
				yield(nil, fmt.Errorf("%w: JSON value %d: %v", ErrRawFormat, line, err))
				return
			}
			if obj.Entries != nil {
				if line != 1 {
					yield(nil, fmt.Errorf("%w: a host answer ({\"entries\": …}) after other JSON values", ErrRawFormat))
					return
				}
				for i, s := range *obj.Entries {
					e, err := base64.StdEncoding.DecodeString(s)
					if err != nil {
						yield(nil, fmt.Errorf("%w: entries[%d] is not base64", ErrRawFormat, i))
						return
					}
					if !yield(e, nil) {
						return
					}
				}
				if dec.More() {
					yield(nil, fmt.Errorf("%w: data after the host answer", ErrRawFormat))
				}
				return
			}
			e, err := base64.StdEncoding.DecodeString(obj.Raw)
			if err != nil || obj.Raw == "" {
				yield(nil, fmt.Errorf("%w: JSON line %d has no base64 \"raw\" entry", ErrRawFormat, line))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
