package api

// Methods the host calls on the enclave.
const (
	MethodInit         = "init"          // InitRequest → InitResponse
	MethodAttest       = "attest"        // AttestRequest → AttestResponse
	MethodRestore      = "restore"       // RestoreRequest → RestoreResponse
	MethodPeerIdentity = "peer_identity" // PeerIdentityRequest → nil
	MethodPropose      = "propose"       // ProposeRequest → ProposeResponse
	MethodRun          = "run"           // RunRequest → SessionResult (blocks until the session ends)
	MethodDeliver      = "deliver"       // DeliverRequest → nil
	MethodStatus       = "status"        // nil → StatusResponse
	MethodAbort        = "abort"         // AbortRequest → nil: end a running session (its host gave up on it)
)

// Methods the enclave calls on the host.
const (
	MethodSend   = "send"   // SendRequest → nil: relay an envelope to a peer
	MethodStore  = "store"  // StoreRequest → nil: persist a sealed blob durably before replying
	MethodDelete = "delete" // DeleteRequest → nil
)

// Algorithms.
const (
	AlgECDSASecp256k1 = "ecdsa-secp256k1"
	AlgEdDSAEd25519   = "eddsa-ed25519"
)

// Session kinds.
const (
	KindKeygen = "keygen"
	KindSign   = "sign"
)

// InitRequest tells the enclave which party it is and which cluster it is in.
// Both are host claims: the party id is checked against the sealed blobs'
// bindings, the manifest hash is attested in user_data so peers refuse an
// enclave given a different manifest.
type InitRequest struct {
	PartyID  string `cbor:"1,keyasint"`
	Manifest []byte `cbor:"2,keyasint"` // JSON manifest as configured
}

type InitResponse struct {
	Identity     Identity `cbor:"1,keyasint"`
	ManifestHash []byte   `cbor:"2,keyasint"`
	Measurement  []byte   `cbor:"3,keyasint"` // PCR0 this enclave reports
}

// Identity is the public half of an enclave's per-boot identity keys. Its
// deterministic encoding is the attestation document's public_key.
type Identity struct {
	PartyID    string `cbor:"1,keyasint" json:"party_id"`
	SigningKey []byte `cbor:"2,keyasint" json:"signing_key"` // Ed25519 public key
	HPKEKey    []byte `cbor:"3,keyasint" json:"hpke_key"`    // DHKEM(X25519) public key
}

type AttestRequest struct {
	Nonce []byte `cbor:"1,keyasint,omitempty"`
}

type AttestResponse struct {
	Document []byte `cbor:"1,keyasint"`
}

// NamedBlob is a sealed blob the host stores under Name. The enclave chooses
// names; the host treats blobs as opaque.
type NamedBlob struct {
	Name string `cbor:"1,keyasint"`
	Blob []byte `cbor:"2,keyasint"`
}

type RestoreRequest struct {
	Blobs []NamedBlob `cbor:"1,keyasint"`
	// AuditTail is the last audit entry the host holds (empty for a new
	// log); the enclave continues the chain after it.
	AuditTail []byte `cbor:"2,keyasint,omitempty"`
}

type RestoreResponse struct {
	Loaded []string      `cbor:"1,keyasint"`
	Failed []BlobFailure `cbor:"2,keyasint"`
}

type BlobFailure struct {
	Name  string `cbor:"1,keyasint"`
	Error string `cbor:"2,keyasint"`
}

type PeerIdentityRequest struct {
	PartyID  string `cbor:"1,keyasint"`
	Document []byte `cbor:"2,keyasint"`
}

// ProposeRequest asks the enclave to coordinate a new session.
type ProposeRequest struct {
	Kind      string   `cbor:"1,keyasint"`
	Algorithm string   `cbor:"2,keyasint"`
	KeyID     string   `cbor:"3,keyasint,omitempty"` // sign only
	Parties   []string `cbor:"4,keyasint"`           // keygen: all parties; sign: exactly t+1 signers
	Message   []byte   `cbor:"5,keyasint,omitempty"` // ungoverned sign only (refused by a governed enclave)
	// Governed sign: the client-signed request and the approvals gathered.
	// The enclave decodes the payload and derives the digests itself.
	Request   []byte   `cbor:"6,keyasint,omitempty"`
	Approvals [][]byte `cbor:"7,keyasint,omitempty"`
	// Governed keygen: the admin quorum's signed ceremony authorising it
	// (governance/ceremony). Every party verifies it.
	Ceremony []byte `cbor:"8,keyasint,omitempty"`
	// Reshare: the key (KeyID) moves to NewParties at NewThreshold as
	// NewEpoch (Parties is the union of the old and the new committee).
	// Keygen in a governed cluster: Threshold is the ceremony's.
	NewParties   []string `cbor:"9,keyasint,omitempty"`
	NewThreshold int      `cbor:"10,keyasint,omitempty"`
	NewEpoch     uint64   `cbor:"11,keyasint,omitempty"`
	Threshold    int      `cbor:"12,keyasint,omitempty"`
}

type ProposeResponse struct {
	Proposal []byte `cbor:"1,keyasint"` // SignedProposal, deterministic CBOR
	ID       []byte `cbor:"2,keyasint"` // proposal id (SHA-256 of the proposal body)
}

// RunRequest joins (or, for the coordinator, starts) the session a signed
// proposal describes. It returns when the session has finished.
type RunRequest struct {
	Proposal []byte `cbor:"1,keyasint"`
}

// SessionResult is what one party reports at the end of a session.
type SessionResult struct {
	ProposalID []byte `cbor:"1,keyasint" json:"proposal_id"`
	SessionID  []byte `cbor:"2,keyasint" json:"session_id"`
	PartyID    string `cbor:"3,keyasint" json:"party_id"`
	Kind       string `cbor:"4,keyasint" json:"kind"`
	Algorithm  string `cbor:"5,keyasint" json:"algorithm"`
	KeyID      string `cbor:"6,keyasint" json:"key_id"`
	PublicKey  []byte `cbor:"7,keyasint" json:"public_key"`
	// Sign only: 64-byte r‖s (ECDSA, low-S) or R‖S (Ed25519), and the
	// ECDSA recovery id.
	Signature  []byte   `cbor:"8,keyasint,omitempty" json:"signature,omitempty"`
	RecoveryID int      `cbor:"9,keyasint,omitempty" json:"recovery_id,omitempty"`
	Message    []byte   `cbor:"10,keyasint,omitempty" json:"message,omitempty"`
	Threshold  int      `cbor:"11,keyasint" json:"threshold"`
	Parties    []string `cbor:"12,keyasint" json:"parties"`
	// Governed sign: the request, every digest signed in order with its
	// signature and recovery id (Signature/RecoveryID/Message repeat the
	// first), the verdict's policy version and rule, and the payload
	// assembled with the signatures (a broadcast-ready EVM transaction, a
	// finalized Bitcoin transaction; empty for raw digests).
	RequestID     string   `cbor:"13,keyasint,omitempty" json:"request_id,omitempty"`
	Digests       [][]byte `cbor:"14,keyasint,omitempty" json:"digests,omitempty"`
	Signatures    [][]byte `cbor:"15,keyasint,omitempty" json:"signatures,omitempty"`
	RecoveryIDs   []int    `cbor:"16,keyasint,omitempty" json:"recovery_ids,omitempty"`
	PolicyVersion uint64   `cbor:"17,keyasint,omitempty" json:"policy_version,omitempty"`
	RuleID        string   `cbor:"18,keyasint,omitempty" json:"rule_id,omitempty"`
	Transaction   []byte   `cbor:"19,keyasint,omitempty" json:"transaction,omitempty"`
	// Epoch of the key's shares the session used (sign) or made (reshare),
	// and a reshare's ack from a member of the new committee.
	Epoch uint64      `cbor:"20,keyasint,omitempty" json:"epoch,omitempty"`
	Ack   *ReshareAck `cbor:"21,keyasint,omitempty" json:"ack,omitempty"`
	// DerivationPath is the BIP-32 path of a governed request that signed
	// with a child key ("m/0/5"); PublicKey is then the child's.
	DerivationPath string `cbor:"22,keyasint,omitempty" json:"derivation_path,omitempty"`
}

type DeliverRequest struct {
	Envelope []byte `cbor:"1,keyasint"`
}

type SendRequest struct {
	To       string `cbor:"1,keyasint"`
	Envelope []byte `cbor:"2,keyasint"`
}

type StoreRequest struct {
	Blob NamedBlob `cbor:"1,keyasint"`
}

// AbortRequest ends the session of a proposal running on this enclave:
// its coordinator failed or was cancelled, so waiting for its inactivity
// timeout would only hold the key (a reshare) and the enclave's resources.
// A host can stall a session anyway; aborting one grants it nothing more.
type AbortRequest struct {
	ProposalID []byte `cbor:"1,keyasint"`
	Reason     string `cbor:"2,keyasint,omitempty"`
}

type DeleteRequest struct {
	Name string `cbor:"1,keyasint"`
}

type StatusResponse struct {
	PartyID        string   `cbor:"1,keyasint" json:"party_id"`
	Initialised    bool     `cbor:"2,keyasint" json:"initialised"`
	PreParamsReady int      `cbor:"3,keyasint" json:"preparams_ready"`
	PreParamsGoal  int      `cbor:"4,keyasint" json:"preparams_goal"`
	Keys           []string `cbor:"5,keyasint" json:"keys"`
	Sessions       int      `cbor:"6,keyasint" json:"sessions"`
	Measurement    []byte   `cbor:"7,keyasint" json:"measurement"`
	// Peers are the peers whose attestation this enclave has verified, with
	// the measurement it verified.
	Peers []PeerStatus `cbor:"8,keyasint" json:"verified_peers"`
	// PolicyVersion is the governance policy in force (0: the manifest has
	// no governance).
	PolicyVersion uint64 `cbor:"9,keyasint,omitempty" json:"policy_version"`
	// KeyEpochs: each key's committed and pending epochs on this party.
	KeyEpochs []KeyEpochs `cbor:"10,keyasint,omitempty" json:"key_epochs,omitempty"`
}

// PeerStatus is one verified peer.
type PeerStatus struct {
	PartyID    string `cbor:"1,keyasint" json:"party_id"`
	PCR0       []byte `cbor:"2,keyasint" json:"pcr0"`
	ModuleID   string `cbor:"3,keyasint" json:"module_id"`
	VerifiedAt int64  `cbor:"4,keyasint" json:"verified_at_unix_ms"`
	DocTime    int64  `cbor:"5,keyasint" json:"document_time_unix_ms"` // NSM documents only
	Kind       string `cbor:"6,keyasint,omitempty" json:"kind,omitempty"`
	// MeasurementPCR and Measurement are the PCR the party's kind is
	// measured by (0 for NSM documents, the pinned PCR for TPM evidence)
	// and its verified value.
	MeasurementPCR uint   `cbor:"7,keyasint,omitempty" json:"measurement_pcr"`
	Measurement    []byte `cbor:"8,keyasint,omitempty" json:"measurement,omitempty"`
}

// EnvelopeHeader routes an envelope. It is authenticated but not encrypted.
type EnvelopeHeader struct {
	Version    uint8  `cbor:"1,keyasint"`
	ProposalID []byte `cbor:"2,keyasint"`
	SessionID  []byte `cbor:"3,keyasint,omitempty"` // empty only on the hello that contributes to it
	From       string `cbor:"4,keyasint"`
	To         string `cbor:"5,keyasint"`
	Seq        uint64 `cbor:"6,keyasint"`
}

// Envelope is the unit hosts relay between enclaves: a routing header, an
// HPKE ciphertext only the recipient enclave can open, and the sender
// enclave's signature over both.
type Envelope struct {
	Header     EnvelopeHeader `cbor:"1,keyasint"`
	Ciphertext []byte         `cbor:"2,keyasint"`
	Signature  []byte         `cbor:"3,keyasint"`
}
