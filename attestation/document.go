package attestation

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Size limits, from the CDDL in aws-nitro-enclaves-nsm-api
// docs/attestation_process.md §2.2. The aux fields use 1024 bytes: the
// document's §3.2.2.2 says 512 for user_data and nonce, but the NSM returns
// 1024-byte fields (aws/aws-nitro-enclaves-nsm-api#52; the real
// us-east-1-2024-09-07-maxfields document carries three of them).
const (
	// MaxDocumentSize bounds a whole COSE_Sign1 document. The NSM driver
	// returns at most 12 KiB; the largest real document seen is 7.5 KiB.
	MaxDocumentSize = 16 << 10
	// MaxAuxSize bounds public_key, user_data and nonce.
	MaxAuxSize = 1024
	// MaxCertSize bounds the leaf certificate and each cabundle entry.
	MaxCertSize = 1024
	// MaxCABundle bounds the number of cabundle entries. AWS sends 4
	// (root, regional, zonal, instance).
	MaxCABundle = 8
	// MaxPCRs is the number of PCRs a Nitro module has; indices are 0..31.
	MaxPCRs = 32
	// MaxModuleIDSize bounds module_id (AWS ids are 38 bytes).
	MaxModuleIDSize = 256

	// DigestSHA384 is the only digest Nitro uses.
	DigestSHA384 = "SHA384"

	// maxTimestamp is 9999-12-31T23:59:59.999Z in milliseconds.
	maxTimestamp = 253402300799999
)

// Document is a Nitro attestation document: the payload of the COSE_Sign1
// message the NSM returns. Field order and CBOR names are AWS's; absent
// optional fields are CBOR null on the wire and nil here.
//
// A Document returned by Verify is authenticated and satisfies the caller's
// policy. One returned by ParseUnverified is only well-formed.
type Document struct {
	ModuleID    string          `cbor:"module_id"`
	Digest      string          `cbor:"digest"`
	Timestamp   uint64          `cbor:"timestamp"` // milliseconds since the Unix epoch
	PCRs        map[uint][]byte `cbor:"pcrs"`
	Certificate []byte          `cbor:"certificate"` // leaf certificate, DER
	CABundle    [][]byte        `cbor:"cabundle"`    // [root, intermediates…], DER; [0] is never trusted
	PublicKey   []byte          `cbor:"public_key"`
	UserData    []byte          `cbor:"user_data"`
	Nonce       []byte          `cbor:"nonce"`
}

// Time returns the document's timestamp.
func (d *Document) Time() time.Time {
	return time.UnixMilli(int64(min(d.Timestamp, maxTimestamp))).UTC()
}

// Debug reports whether the document comes from an enclave started in debug
// mode, where the NSM reports PCR0, PCR1 and PCR2 as all zeros.
func (d *Document) Debug() bool {
	pcr0, ok := d.PCRs[0]
	return ok && allZero(pcr0)
}

// MarshalCBOR encodes the document exactly as the NSM does: a 9-entry map in
// the order module_id, digest, timestamp, pcrs, certificate, cabundle,
// public_key, user_data, nonce, with nil fields as null and pcrs sorted by
// index. It does not validate; SignDocument does.
func (d *Document) MarshalCBOR() ([]byte, error) {
	fields := []struct {
		name  string
		value any
	}{
		{"module_id", d.ModuleID},
		{"digest", d.Digest},
		{"timestamp", d.Timestamp},
		{"pcrs", d.PCRs},
		{"certificate", d.Certificate},
		{"cabundle", d.CABundle},
		{"public_key", d.PublicKey},
		{"user_data", d.UserData},
		{"nonce", d.Nonce},
	}
	out := []byte{0xa0 | byte(len(fields))} // map(9)
	for _, f := range fields {
		k, err := encMode.Marshal(f.name)
		if err != nil {
			return nil, fmt.Errorf("attestation: encode %s: %w", f.name, err)
		}
		v, err := encMode.Marshal(f.value)
		if err != nil {
			return nil, fmt.Errorf("attestation: encode %s: %w", f.name, err)
		}
		out = append(out, k...)
		out = append(out, v...)
	}
	return out, nil
}

// wireDocument is Document as decoded from untrusted bytes: every byte
// field must be a CBOR byte string (or null), where fxamacker/cbor would
// also accept an array of small integers for a []byte.
type wireDocument struct {
	ModuleID    string        `cbor:"module_id"`
	Digest      string        `cbor:"digest"`
	Timestamp   uint64        `cbor:"timestamp"`
	PCRs        map[uint]bstr `cbor:"pcrs"`
	Certificate bstr          `cbor:"certificate"`
	CABundle    []bstr        `cbor:"cabundle"`
	PublicKey   bstr          `cbor:"public_key"`
	UserData    bstr          `cbor:"user_data"`
	Nonce       bstr          `cbor:"nonce"`
}

// bstr is a []byte that decodes only from a CBOR byte string or null.
type bstr []byte

func (b *bstr) UnmarshalCBOR(data []byte) error {
	if len(data) == 1 && (data[0] == 0xf6 || data[0] == 0xf7) { // null, undefined
		*b = nil
		return nil
	}
	if len(data) == 0 || data[0]>>5 != 2 {
		return errors.New("cbor: want a byte string")
	}
	var v []byte
	if err := decMode.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = v
	return nil
}

// decodePayload decodes the COSE payload into a Document with the strict
// decoder and checks its syntax.
func decodePayload(payload []byte) (*Document, error) {
	var w wireDocument
	if err := decMode.Unmarshal(payload, &w); err != nil {
		return nil, malformed("payload", "malformed", "CBOR attestation document map", "", err)
	}
	d := &Document{
		ModuleID:    w.ModuleID,
		Digest:      w.Digest,
		Timestamp:   w.Timestamp,
		Certificate: w.Certificate,
		PublicKey:   w.PublicKey,
		UserData:    w.UserData,
		Nonce:       w.Nonce,
	}
	if w.PCRs != nil {
		d.PCRs = make(map[uint][]byte, len(w.PCRs))
		for i, v := range w.PCRs {
			d.PCRs[i] = v
		}
	}
	if w.CABundle != nil {
		d.CABundle = make([][]byte, len(w.CABundle))
		for i, c := range w.CABundle {
			d.CABundle[i] = c
		}
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// validate checks the document against the CDDL limits. Unknown payload keys
// are ignored (as AWS's own parser does) so a future optional field does not
// break verification; every field the verifier relies on is checked here.
func (d *Document) validate() error {
	switch {
	case d.ModuleID == "":
		return malformed("module_id", "missing", "non-empty text", "empty or absent", nil)
	case len(d.ModuleID) > MaxModuleIDSize:
		return malformed("module_id", "too long", fmt.Sprintf("at most %d bytes", MaxModuleIDSize), fmt.Sprintf("%d bytes", len(d.ModuleID)), nil)
	}
	if d.Digest == "" {
		return malformed("digest", "missing", DigestSHA384, "empty or absent", nil)
	}
	if d.Digest != DigestSHA384 {
		return malformed("digest", "unsupported", DigestSHA384, fmt.Sprintf("%q", d.Digest), nil)
	}
	switch {
	case d.Timestamp == 0:
		return malformed("timestamp", "missing", "milliseconds since the epoch", "0 or absent", nil)
	case d.Timestamp > maxTimestamp:
		return malformed("timestamp", "out of range", fmt.Sprintf("at most %d ms", uint64(maxTimestamp)), fmt.Sprint(d.Timestamp), nil)
	}
	if n := len(d.PCRs); n < 1 || n > MaxPCRs {
		return malformed("pcrs", "count out of range", fmt.Sprintf("1..%d entries", MaxPCRs), fmt.Sprintf("%d entries", n), nil)
	}
	for _, i := range sortedIndices(d.PCRs) {
		if i >= MaxPCRs {
			return malformed("pcrs", "index out of range", fmt.Sprintf("index below %d", MaxPCRs), fmt.Sprint(i), nil)
		}
		if !validPCRLen(len(d.PCRs[i])) {
			return malformed(fmt.Sprintf("pcr%d", i), "bad length", "32, 48 or 64 bytes", fmt.Sprintf("%d bytes", len(d.PCRs[i])), nil)
		}
	}
	if err := checkCertSize("certificate", d.Certificate); err != nil {
		return err
	}
	if n := len(d.CABundle); n < 1 || n > MaxCABundle {
		return malformed("cabundle", "count out of range", fmt.Sprintf("1..%d certificates", MaxCABundle), fmt.Sprintf("%d", n), nil)
	}
	for i, c := range d.CABundle {
		if err := checkCertSize(fmt.Sprintf("cabundle[%d]", i), c); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"public_key", d.PublicKey}, {"user_data", d.UserData}, {"nonce", d.Nonce}} {
		if len(f.b) > MaxAuxSize {
			return malformed(f.name, "too long", fmt.Sprintf("at most %d bytes", MaxAuxSize), fmt.Sprintf("%d bytes", len(f.b)), nil)
		}
	}
	return nil
}

func checkCertSize(name string, der []byte) error {
	if len(der) < 1 || len(der) > MaxCertSize {
		return malformed(name, "size out of range", fmt.Sprintf("1..%d bytes", MaxCertSize), fmt.Sprintf("%d bytes", len(der)), nil)
	}
	return nil
}

func validPCRLen(n int) bool { return n == 32 || n == 48 || n == 64 }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func sortedIndices(m map[uint][]byte) []uint {
	idx := make([]uint, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return idx
}

// RolePCR returns the PCR3 value Nitro reports for a parent instance with
// the given IAM role ARN: SHA-384(0^48 ‖ arn).
func RolePCR(roleARN string) []byte { return extendZero([]byte(roleARN)) }

// InstancePCR returns the PCR4 value Nitro reports for a parent instance
// with the given EC2 instance id (e.g. "i-07e25f3bada361dec").
func InstancePCR(instanceID string) []byte { return extendZero([]byte(instanceID)) }

// InstanceID extracts the EC2 instance id from a Nitro module_id of the form
// "<instance-id>-enc<enclave-id>".
func InstanceID(moduleID string) (string, bool) {
	i := strings.LastIndex(moduleID, "-enc")
	if i <= len("i-") || !strings.HasPrefix(moduleID, "i-") {
		return "", false
	}
	return moduleID[:i], true
}

// extendZero is a PCR extend from the all-zero initial value.
func extendZero(data []byte) []byte {
	h := sha512.New384()
	h.Write(make([]byte, sha512.Size384))
	h.Write(data)
	return h.Sum(nil)
}
