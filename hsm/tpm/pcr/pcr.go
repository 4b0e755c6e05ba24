// Package pcr is the PCR selection both TPM packages use: validating a
// selection, its PC Client bitmap, and reading SHA-256 bank values with
// TPM2_PCR_Read (hsm/tpm for sealing, attestation/tpm for quotes).
package pcr

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Num is the number of PCRs a PC Client TPM has; indices are 0..23.
const Num = 24

// Errors, for errors.Is: ErrInvalid for a selection that is empty, out of
// range, repeated or not allocated in the SHA-256 bank; ErrDevice for a
// failed command or an inconsistent answer.
var (
	ErrInvalid = errors.New("pcr: invalid selection")
	ErrDevice  = errors.New("pcr: TPM2_PCR_Read failed")
)

// Normalize validates a PCR selection and returns it sorted.
func Normalize(pcrs []int) ([]int, error) {
	if len(pcrs) == 0 {
		return nil, fmt.Errorf("%w: empty pcr selection: name at least one PCR", ErrInvalid)
	}
	s := slices.Clone(pcrs)
	slices.Sort(s)
	for i, p := range s {
		if p < 0 || p >= Num {
			return nil, fmt.Errorf("%w: pcr index %d out of range 0..%d", ErrInvalid, p, Num-1)
		}
		if i > 0 && s[i-1] == p {
			return nil, fmt.Errorf("%w: pcr %d selected twice", ErrInvalid, p)
		}
	}
	return s, nil
}

// Mask is the PC Client selection bitmap of pcrs (3 bytes).
func Mask(pcrs []int) []byte {
	m := make([]byte, Num/8)
	for _, p := range pcrs {
		m[p/8] |= 1 << (p % 8)
	}
	return m
}

// SHA256Selection selects pcrs in the SHA-256 bank.
func SHA256Selection(pcrs []int) tpm2.TPMLPCRSelection {
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: Mask(pcrs)}}}
}

// Read returns the SHA-256 values of sorted, valid pcrs, in that order.
// TPM2_PCR_Read returns at most eight digests per call, so it loops; an
// answer that selects more PCRs than it carries values, or a value of the
// wrong size, is ErrDevice, never an index out of range.
func Read(rw transport.TPM, pcrs []int) ([][]byte, error) {
	got := make(map[int][]byte, len(pcrs))
	for len(got) < len(pcrs) {
		var rest []int
		for _, p := range pcrs {
			if got[p] == nil {
				rest = append(rest, p)
			}
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: SHA256Selection(rest)}.Execute(rw)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDevice, err)
		}
		k, progress := 0, false
		for _, s := range rsp.PCRSelectionOut.PCRSelections {
			for i := 0; i < 8*len(s.PCRSelect); i++ {
				if s.PCRSelect[i/8]&(1<<(i%8)) == 0 {
					continue
				}
				if k >= len(rsp.PCRValues.Digests) {
					return nil, fmt.Errorf("%w: it selected more PCRs than it returned values", ErrDevice)
				}
				d := rsp.PCRValues.Digests[k].Buffer
				k++
				if s.Hash != tpm2.TPMAlgSHA256 || !slices.Contains(rest, i) || got[i] != nil {
					continue
				}
				if len(d) != sha256.Size {
					return nil, fmt.Errorf("%w: pcr %d has a %d-byte SHA-256 value", ErrDevice, i, len(d))
				}
				got[i] = slices.Clone(d)
				progress = true
			}
		}
		if !progress {
			return nil, fmt.Errorf("%w: pcrs %v are not allocated in the SHA-256 bank", ErrInvalid, rest)
		}
	}
	out := make([][]byte, len(pcrs))
	for i, p := range pcrs {
		out[i] = got[p]
	}
	return out, nil
}
