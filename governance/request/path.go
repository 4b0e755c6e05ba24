package request

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// BIP-32 derivation paths (https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki).
//
// A threshold key is a BIP-32 master public key: its public key and the
// chain code its parties agreed at keygen. Only non-hardened children
// (index < 2^31) exist for it. Hardened derivation hashes the parent's
// private key, and no party ever holds the private key of a threshold key,
// so no hardened child can be computed; non-hardened children are the
// parent key plus a public tweak (BIP-32 "Public parent key → public child
// key"), which the parties add to their shares when they sign.
const (
	// MaxPathDepth bounds a path's length. BIP-32 allows 255 levels;
	// wallets use 3 to 6 (BIP-44 has 5, two of them hardened).
	MaxPathDepth = 16
	// HardenedIndex is the first hardened child index (2^31).
	HardenedIndex = 1 << 31
	// maxPathLen bounds the text form: "m" and 16 × "/2147483647".
	maxPathLen = 1 + MaxPathDepth*11
)

// ErrPath is matched (errors.Is) by every path error.
var ErrPath = errors.New("request: invalid derivation path")

// Path is a BIP-32 path of non-hardened child indices below a threshold
// key; empty is the key itself ("m"). It encodes as a CBOR array of
// unsigned integers.
type Path []uint32

// ParsePath parses the text form "m", "m/0", "m/44/60/0/0/7": "m", then up
// to MaxPathDepth decimal indices below 2^31, each after a '/'. Hardened
// indices ("0'", "0h", or 2^31 and above) are refused, saying why.
func ParsePath(s string) (Path, error) {
	if len(s) > maxPathLen {
		return nil, fmt.Errorf("%w: %d characters, limit %d (at most %d levels)", ErrPath, len(s), maxPathLen, MaxPathDepth)
	}
	if s == "m" {
		return Path{}, nil
	}
	rest, ok := strings.CutPrefix(s, "m/")
	if !ok {
		return nil, fmt.Errorf("%w: %q: want \"m\" or \"m/\" and indices, like m/0/1", ErrPath, s)
	}
	parts := strings.Split(rest, "/")
	if len(parts) > MaxPathDepth {
		return nil, fmt.Errorf("%w: %q: %d levels, limit %d", ErrPath, s, len(parts), MaxPathDepth)
	}
	p := make(Path, 0, len(parts))
	for i, c := range parts {
		if strings.HasSuffix(c, "'") || strings.HasSuffix(c, "h") || strings.HasSuffix(c, "H") {
			return nil, hardenedError(s, i+1, c)
		}
		if c == "" || strings.Trim(c, "0123456789") != "" {
			return nil, fmt.Errorf("%w: %q: level %d is %q, want a decimal index", ErrPath, s, i+1, c)
		}
		if len(c) > 1 && c[0] == '0' {
			return nil, fmt.Errorf("%w: %q: level %d is %q: no leading zeros", ErrPath, s, i+1, c)
		}
		n, err := strconv.ParseUint(c, 10, 32)
		if err != nil || n >= HardenedIndex {
			return nil, hardenedError(s, i+1, c)
		}
		p = append(p, uint32(n))
	}
	return p, nil
}

func hardenedError(s string, level int, c string) error {
	return fmt.Errorf("%w: %q: level %d (%q) is a hardened index; only non-hardened indices 0 to %d can be derived: hardened derivation needs the private key, and a threshold key's private key never exists in any one place", ErrPath, s, level, c, HardenedIndex-1)
}

// Validate checks a decoded path: at most MaxPathDepth indices, each below
// HardenedIndex.
func (p Path) Validate() error {
	if len(p) > MaxPathDepth {
		return fmt.Errorf("%w: %d levels, limit %d", ErrPath, len(p), MaxPathDepth)
	}
	for i, n := range p {
		if n >= HardenedIndex {
			return hardenedError(p.String(), i+1, strconv.FormatUint(uint64(n), 10))
		}
	}
	return nil
}

// String is the text form ParsePath reads: "m" for the empty path. Indices
// at or above HardenedIndex (which Validate refuses) print as numbers.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString("m")
	for _, n := range p {
		b.WriteByte('/')
		b.WriteString(strconv.FormatUint(uint64(n), 10))
	}
	return b.String()
}
