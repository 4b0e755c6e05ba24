package tpm

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// The AK shares the hsm/tpm connection with a sealer: quotes, seals,
// unseals and random reads from several goroutines interleave safely.
// Run with -race.
func TestConcurrentQuoteAndSeal(t *testing.T) {
	tp := openTPM(t)
	ak := newAK(t, tp)
	att, err := NewAttester(ak, []int{0, 7, 16})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tp.Sealer([]int{7, 16})
	if err != nil {
		t.Fatal(err)
	}
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds*4)
	for w := range 4 {
		wg.Go(func() {
			for r := range rounds {
				nonce := fmt.Appendf(nil, "nonce %d/%d", w, r)
				raw, err := att.Attest([]byte("pk"), []byte("ud"), nonce)
				if err != nil {
					errs <- err
					return
				}
				if _, err := VerifyEvidence(raw, VerifyOptions{AKPublic: ak.Public(), Nonce: nonce}); err != nil {
					errs <- err
					return
				}
				blob, err := s.Seal(nonce, nonce)
				if err != nil {
					errs <- err
					return
				}
				if pt, err := s.Unseal(nonce, blob); err != nil || !bytes.Equal(pt, nonce) {
					errs <- fmt.Errorf("Unseal = %q, %v", pt, err)
					return
				}
				if _, err := tp.Read(make([]byte, 48)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
