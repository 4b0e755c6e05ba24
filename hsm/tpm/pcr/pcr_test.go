package pcr

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestNormalizeAndMask(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []int
		want []int
		mask []byte
	}{
		{"one", []int{23}, []int{23}, []byte{0, 0, 0x80}},
		{"sorted", []int{7, 0, 16}, []int{0, 7, 16}, []byte{0x81, 0, 0x01}},
	} {
		got, err := Normalize(tt.in)
		if err != nil || !slices.Equal(got, tt.want) || !bytes.Equal(Mask(got), tt.mask) {
			t.Errorf("%s: Normalize = %v, %v; mask %x; want %v, %x", tt.name, got, err, Mask(got), tt.want, tt.mask)
		}
	}
	for _, in := range [][]int{nil, {-1}, {24}, {3, 3}} {
		if _, err := Normalize(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%v) = %v, want ErrInvalid", in, err)
		}
	}
}
