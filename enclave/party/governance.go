package party

import (
	"fmt"
	"time"

	"github.com/sealsign/sealsign/enclave/api"
	"github.com/sealsign/sealsign/governance/policy"
)

// genesisPolicy verifies the manifest's genesis policy against its admin
// quorum and cluster id and returns the policy store that later signed
// updates advance (policy.Store.Accept refuses rollbacks).
func genesisPolicy(m *api.Manifest, now time.Time) (*policy.Store, error) {
	sets, err := m.Governance.Sets()
	if err != nil {
		return nil, err
	}
	p, err := policy.Accept(nil, m.Governance.Policy, sets.Admins, m.ClusterID, now)
	if err != nil {
		return nil, fmt.Errorf("party: genesis policy refused: %w", err)
	}
	return policy.NewStore(p)
}

func (e *Enclave) policyVersion() uint64 {
	if e.policies == nil {
		return 0
	}
	if p := e.policies.Effective(e.cfg.Clock()); p != nil {
		return p.Version
	}
	return 0
}
