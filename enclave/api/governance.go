package api

import (
	"fmt"

	"github.com/sealsign/sealsign/governance/approval"
	"github.com/sealsign/sealsign/governance/keys"
	"github.com/sealsign/sealsign/governance/policy"
)

// Governance names who may do what in a cluster (DESIGN.md, flow 2): the
// admins whose quorum signs policies and ceremonies, the approvers and
// their groups, the client API keys that may request signatures, and the
// genesis policy. It is part of the manifest, so its hash is in every
// party's attestation: parties configured with other keys refuse each
// other.
//
// Version 1. Append fields only.
type Governance struct {
	Admins []keys.PublicKey `json:"admins" cbor:"1,keyasint"`
	// AdminQuorum is how many distinct admins must sign a policy or a
	// ceremony: at least 2, so no admin alone changes anything.
	AdminQuorum int              `json:"admin_quorum" cbor:"2,keyasint"`
	Approvers   []keys.PublicKey `json:"approvers,omitempty" cbor:"3,keyasint,omitempty"`
	Groups      approval.Groups  `json:"groups,omitempty" cbor:"4,keyasint,omitempty"`
	Clients     []keys.PublicKey `json:"clients" cbor:"5,keyasint"`
	// Policy is the genesis policy, a policy.SignedPolicy encoding signed by
	// the admin quorum. Every enclave verifies it; later versions replace it
	// only through a signed update (policy.Accept).
	Policy []byte `json:"policy" cbor:"6,keyasint"`
	// Recovery are the offline recovery public keys backups may be
	// encrypted to (a backup ceremony names a subset). Ids are unique and
	// separate from every other role's.
	Recovery []RecoveryKey `json:"recovery,omitempty" cbor:"7,keyasint,omitempty"`
}

// GovernanceSets are a validated Governance, indexed.
type GovernanceSets struct {
	Admins    policy.Admins
	Approvers keys.Set
	Clients   keys.Set
	Groups    approval.Groups
	Recovery  map[string]RecoveryKey
}

// Sets validates g and indexes its keys. A key id may appear in one role
// only, so a signature for one role is never checked against another's key.
func (g *Governance) Sets() (*GovernanceSets, error) {
	admins, err := keys.NewSet(g.Admins)
	if err != nil {
		return nil, fmt.Errorf("api: manifest: governance admins: %w", err)
	}
	if len(admins) < 2 || g.AdminQuorum < 2 || g.AdminQuorum > len(admins) {
		return nil, fmt.Errorf("api: manifest: governance: admin quorum %d of %d admins invalid (want 2 ≤ quorum ≤ admins: no admin alone changes anything)", g.AdminQuorum, len(admins))
	}
	approvers, err := keys.NewSet(g.Approvers)
	if err != nil {
		return nil, fmt.Errorf("api: manifest: governance approvers: %w", err)
	}
	clients, err := keys.NewSet(g.Clients)
	if err != nil {
		return nil, fmt.Errorf("api: manifest: governance clients: %w", err)
	}
	if len(clients) == 0 {
		return nil, fmt.Errorf("api: manifest: governance names no client key: nobody could request a signature")
	}
	recovery, err := validateRecoveryKeys(g.Recovery)
	if err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for id := range recovery {
		seen[id] = "recovery"
	}
	for role, set := range map[string]keys.Set{"admin": admins, "approver": approvers, "client": clients} {
		for id := range set {
			if other, dup := seen[id]; dup {
				return nil, fmt.Errorf("api: manifest: governance: key id %q is both %s and %s; give each role its own key", id, other, role)
			}
			seen[id] = role
		}
	}
	if err := g.Groups.Validate(approvers); err != nil {
		return nil, fmt.Errorf("api: manifest: governance groups: %w", err)
	}
	if len(g.Policy) == 0 {
		return nil, fmt.Errorf("api: manifest: governance has no genesis policy")
	}
	return &GovernanceSets{Admins: policy.Admins{Keys: admins, Quorum: g.AdminQuorum}, Approvers: approvers, Clients: clients, Groups: g.Groups, Recovery: recovery}, nil
}
