package api

// MethodDerive is called by the host: DeriveRequest → DeriveResponse, the
// BIP-32 non-hardened child of a secp256k1 key.
const MethodDerive = "derive"

// DeriveRequest asks for the child of KeyID at Path (child indices below
// 2^31 from the key down; empty is the key itself, "m").
type DeriveRequest struct {
	KeyID string   `cbor:"1,keyasint"`
	Path  []uint32 `cbor:"2,keyasint,omitempty"`
}

// DeriveResponse is the child's public key (33-byte compressed), its chain
// code, its BIP-32 extended public key (mainnet "xpub…", with depth, parent
// fingerprint and child number) and the path in text form ("m/0/1").
//
// Version 1. Append fields only.
type DeriveResponse struct {
	KeyID     string `cbor:"1,keyasint" json:"key_id"`
	Path      string `cbor:"2,keyasint" json:"path"`
	PublicKey []byte `cbor:"3,keyasint" json:"public_key"`
	ChainCode []byte `cbor:"4,keyasint" json:"chain_code"`
	XPub      string `cbor:"5,keyasint" json:"xpub"`
}
