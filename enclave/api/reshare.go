package api

// Key lifecycle: refresh and reshare (a new epoch of a key's shares).
//
// A reshare runs in two phases. In the session (MethodRun on a
// KindReshare proposal) every member of the new committee seals its share
// of the new epoch under that epoch's hardware key and has its host store
// it, still pending; nothing is destroyed. The coordinator then gathers a
// ReshareAck from every member of the new committee (MethodReshareAck) and
// hands them all to every party of both committees (MethodReshareCommit):
// a party commits the new epoch only on a full set of acks, and only then
// destroys the old epoch's hardware key and blob. A crash before any commit
// leaves the old epoch usable everywhere; after one, every member holds the
// new epoch durably and rerunning the commit completes it.
const (
	KindReshare = "reshare"

	MethodReshareAck    = "reshare_ack"    // ReshareAckRequest → ReshareAck
	MethodReshareCommit = "reshare_commit" // ReshareCommitRequest → ReshareCommitResponse
)

// DomainReshareAck is the signature domain of ReshareAck statements.
const DomainReshareAck = "sealsign/v1/reshare-ack"

// ReshareStatement is what a new committee member attests in its ack: it
// holds, sealed and stored, its share of KeyID at NewEpoch, made by the
// reshare session ProposalID from OldEpoch, for the committee NewParties at
// NewThreshold, and the new epoch's public share points hash to SharesHash.
// Every member's statement must be byte for byte the same.
type ReshareStatement struct {
	ProposalID   []byte   `cbor:"1,keyasint" json:"proposal_id"`
	KeyID        string   `cbor:"2,keyasint" json:"key_id"`
	PublicKey    []byte   `cbor:"3,keyasint" json:"public_key"`
	OldEpoch     uint64   `cbor:"4,keyasint" json:"old_epoch"`
	NewEpoch     uint64   `cbor:"5,keyasint" json:"new_epoch"`
	NewParties   []string `cbor:"6,keyasint" json:"new_parties"`
	NewThreshold int      `cbor:"7,keyasint" json:"new_threshold"`
	SharesHash   []byte   `cbor:"8,keyasint" json:"shares_hash"`
}

// ReshareAck is one new committee member's signed statement (its enclave's
// attested identity key, DomainReshareAck over Statement).
type ReshareAck struct {
	PartyID   string `cbor:"1,keyasint" json:"party_id"`
	Statement []byte `cbor:"2,keyasint" json:"statement"` // ReshareStatement, deterministic CBOR
	Signature []byte `cbor:"3,keyasint" json:"signature"`
}

type ReshareAckRequest struct {
	KeyID string `cbor:"1,keyasint"`
	Epoch uint64 `cbor:"2,keyasint"`
}

type ReshareCommitRequest struct {
	KeyID string       `cbor:"1,keyasint"`
	Acks  []ReshareAck `cbor:"2,keyasint"`
}

// ReshareCommitResponse reports what a party did with a commit.
type ReshareCommitResponse struct {
	PartyID string `cbor:"1,keyasint" json:"party_id"`
	// Outcome: "committed" (now holds the new epoch), "already-committed"
	// (held it before), "removed" (not in the new committee: its share is
	// destroyed).
	Outcome string `cbor:"2,keyasint" json:"outcome"`
	Epoch   uint64 `cbor:"3,keyasint" json:"epoch"`
	// Destroyed are the epochs of the key whose hardware keys and blobs
	// this party destroyed.
	Destroyed []uint64 `cbor:"4,keyasint,omitempty" json:"destroyed,omitempty"`
	Threshold int      `cbor:"5,keyasint" json:"threshold"`
	Parties   []string `cbor:"6,keyasint" json:"parties"`
	Algorithm string   `cbor:"7,keyasint" json:"algorithm"`
	PublicKey []byte   `cbor:"8,keyasint" json:"public_key"`
}

// KeyEpochs is one key's epochs on a party (StatusResponse.KeyEpochs).
type KeyEpochs struct {
	KeyID string `cbor:"1,keyasint" json:"key_id"`
	// Epoch is the committed epoch this party signs with; Active is false
	// when it holds no committed share (only pending ones).
	Epoch  uint64 `cbor:"2,keyasint" json:"epoch"`
	Active bool   `cbor:"3,keyasint" json:"active"`
	// Pending are epochs sealed and stored by a reshare, not yet committed.
	Pending   []uint64 `cbor:"4,keyasint,omitempty" json:"pending,omitempty"`
	Parties   []string `cbor:"5,keyasint" json:"parties"`
	Threshold int      `cbor:"6,keyasint" json:"threshold"`
}
