package server

import (
	"slices"
	"testing"
)

// TestTPMPCRs: sealing and quotes use one selection, MeasurePCR always in
// it, each PCR once — an operator repeating 23 must not break the quote.
func TestTPMPCRs(t *testing.T) {
	for _, tt := range []struct {
		extra, want []int
	}{
		{nil, []int{23}},
		{[]int{7, 0, 23, 7}, []int{0, 7, 23}},
	} {
		if got := tpmPCRs(Options{TPMSealPCRs: tt.extra}); !slices.Equal(got, tt.want) {
			t.Errorf("tpmPCRs(%v) = %v, want %v", tt.extra, got, tt.want)
		}
	}
}
