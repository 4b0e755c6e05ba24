package entropy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("device gone") }

func TestMixerDependsOnBothSources(t *testing.T) {
	read := func(hw, os io.Reader) []byte {
		m, err := New(hw, os)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		if _, err := io.ReadFull(m, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := read(constReader(1), constReader(2))
	if bytes.Equal(base, read(constReader(1), constReader(2))) == false {
		t.Fatal("same inputs gave different output: the mixer is not a function of its sources")
	}
	if bytes.Equal(base, read(constReader(9), constReader(2))) {
		t.Fatal("output ignores the hardware source")
	}
	if bytes.Equal(base, read(constReader(1), constReader(9))) {
		t.Fatal("output ignores the OS source")
	}
	if bytes.Equal(base[:32], base[32:]) {
		t.Fatal("output repeats")
	}
}

func TestMixerNoRepeatsAcrossReads(t *testing.T) {
	m, err := New(constReader(1), constReader(2))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		b := make([]byte, 32)
		m.Read(b)
		if seen[string(b)] {
			t.Fatalf("read %d repeated an earlier output", i)
		}
		seen[string(b)] = true
	}
}

func TestMixerReseedsAndFailsClosed(t *testing.T) {
	hw := &countingReader{r: rand.Reader}
	m, err := New(hw, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, ReseedBytes+10)
	if _, err := io.ReadFull(m, buf); err != nil {
		t.Fatal(err)
	}
	if hw.n < 2 {
		t.Fatalf("hardware source read %d times over %d bytes, want a reseed", hw.n, len(buf))
	}
	if _, err := New(failReader{}, rand.Reader); err == nil {
		t.Fatal("New with a failing hardware source succeeded")
	}
	if _, err := New(rand.Reader, failReader{}); err == nil {
		t.Fatal("New with a failing OS source succeeded")
	}
	if _, err := New(nil, rand.Reader); err == nil {
		t.Fatal("New without a hardware source succeeded")
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) { c.n++; return c.r.Read(p) }
