// Package entropy mixes a hardware random source with the OS RNG, so no
// single source decides the enclave's keys (DESIGN.md: "entropy is always
// mixed, never taken from one source alone").
//
// The output is a fast-key-erasure AES-256-CTR generator whose key is
// re-derived with HKDF-SHA-256 from fresh hardware and OS bytes (and the
// previous key) every ReseedBytes of output. Compromise of either source
// alone does not predict the output while the other is good.
package entropy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
)

// ReseedBytes bounds how much output one seed produces.
const ReseedBytes = 1 << 20

const seedLen = 32

// Mixer is an io.Reader safe for concurrent use.
type Mixer struct {
	hw, os io.Reader

	mu      sync.Mutex
	key     [32]byte
	seeded  bool
	used    int
	counter [aes.BlockSize]byte
}

// New returns a mixer over a hardware source (HSM, NSM or TPM) and an OS
// source (crypto/rand.Reader). Both are required.
func New(hw, os io.Reader) (*Mixer, error) {
	if hw == nil || os == nil {
		return nil, fmt.Errorf("entropy: both a hardware and an OS source are required")
	}
	m := &Mixer{hw: hw, os: os}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reseed(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Mixer) reseed() error {
	var in [2 * seedLen]byte
	if _, err := io.ReadFull(m.hw, in[:seedLen]); err != nil {
		return fmt.Errorf("entropy: hardware source: %w", err)
	}
	if _, err := io.ReadFull(m.os, in[seedLen:]); err != nil {
		return fmt.Errorf("entropy: os source: %w", err)
	}
	secret := append(in[:], m.key[:]...)
	k, err := hkdf.Key(sha256.New, secret, []byte("sealsign/v1/entropy/salt"), "sealsign/v1/entropy/key", 32)
	clear(secret)
	clear(in[:])
	if err != nil {
		return fmt.Errorf("entropy: derive key: %w", err)
	}
	copy(m.key[:], k)
	clear(k)
	m.seeded = true
	m.used = 0
	return nil
}

// Read fills p. It fails only when a source fails; it never returns
// partially mixed output.
func (m *Mixer) Read(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for n < len(p) {
		if m.used >= ReseedBytes {
			if err := m.reseed(); err != nil {
				return n, err
			}
		}
		chunk := min(len(p)-n, 64<<10, ReseedBytes-m.used)
		block, err := aes.NewCipher(m.key[:])
		if err != nil {
			return n, fmt.Errorf("entropy: %w", err)
		}
		stream := cipher.NewCTR(block, m.counter[:])
		// Fast key erasure: the first 32 bytes of keystream become the next
		// key, so a later state compromise cannot recover earlier output.
		var next [32]byte
		stream.XORKeyStream(next[:], next[:])
		out := p[n : n+chunk]
		clear(out)
		stream.XORKeyStream(out, out)
		m.key = next
		clear(next[:])
		n += chunk
		m.used += chunk
	}
	return n, nil
}
