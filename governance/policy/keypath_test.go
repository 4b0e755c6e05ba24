package policy

import "testing"

// TestKeyPathCondition: request.key_path is the BIP-32 path of the child
// key that signs ("m" for the key itself), so a policy can confine a rule
// to some children.
func TestKeyPathCondition(t *testing.T) {
	p := newPolicy(t, Rule{ID: "raw-children", Effect: "allow", Condition: `request.kind == "raw-digest" && request.key_path.startsWith("m/0/")`})
	for _, tc := range []struct {
		path string
		want Outcome
	}{
		{"m/0/5", Allow},
		{"m/0/1/2", Allow},
		{"m", Deny},
		{"m/1/5", Deny},
		{"", Deny},
	} {
		in := rawInput()
		in.KeyPath = tc.path
		if d := p.Evaluate(in, NewVelocityState()); d.Outcome != tc.want {
			t.Errorf("key_path %q: %s %+v, want %s", tc.path, d.Outcome, d.Denials, tc.want)
		}
	}
}
