package ceremony

import "testing"

// FuzzVerify: Verify never panics, and whatever it accepts is a valid
// ceremony for the cluster, authorised by at least a quorum.
func FuzzVerify(f *testing.F) {
	good := mustNew(f, base(), admin1, admin2)
	f.Add(good)
	f.Add(mustNew(f, base(), admin1))
	f.Add(good[:len(good)/2])
	f.Add(signRaw(f, Ceremony{Format: 1}, admin1, admin2))
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x80})
	f.Add([]byte{})
	as := admins(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, by, err := Verify(data, as, cluster, now, 0)
		if err != nil {
			if c != nil || by != nil {
				t.Fatal("result returned with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid ceremony: %v", err)
		}
		if c.ClusterID != cluster || len(by) < as.Quorum {
			t.Fatalf("accepted %+v by %v", c, by)
		}
	})
}
