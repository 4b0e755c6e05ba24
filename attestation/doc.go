// Package attestation models AWS Nitro Enclaves attestation documents and
// holds the one verifier the enclave, the host and the CLI all use.
//
// A document is a COSE_Sign1 message (RFC 9052) signed with ES384 by a
// short-lived leaf certificate that chains, through the intermediates in the
// document's cabundle, to a root the caller trusts. Verify checks the
// structure, the chain, the signature and a measurement policy (PCRs, debug
// mode, nonce, user_data, public_key) and returns the document only when all
// pass; VerifyDetailed also lists the checks it performed. The trust anchor
// always comes from the caller: the copy of the root inside the document is
// ignored. Production callers pass AWSRoots(), the AWS Nitro root embedded
// in this package and pinned by its DER SHA-256 (AWSRootSHA256); a dev NSM's
// root (package devnsm) is trusted only where a caller passes it instead.
//
// Formats: aws-nitro-enclaves-nsm-api docs/attestation_process.md; real
// AWS-signed fixtures with their expected outcomes are in testdata/.
package attestation
