// Package auditlog is the auditor's side of the enclaves' audit logs
// (package enclave/audit): it fetches a party's log from its host or reads
// an exported file, verifies it against the cluster manifest, checks the
// logs of several parties against each other, exports them for auditors
// and writes the ceremony report.
//
// # Trust
//
// audit.Verifier checks the chain (encoding, signatures, seq, links, time,
// checkpoints, anchors). What it cannot know is whether a signer key
// belongs to a genuine enclave of the party: that is Trust. Every boot
// entry carries the attestation document the enclave made when it started
// its chain; Trust verifies it with attestation/peer under the manifest's
// policy for the party (kind, pinned PCRs, dev roots or AWS root or TPM AK),
// with user_data the manifest hash, and requires the attested identity
// (api.Identity, the document's public_key) to name the party and the
// entry's signer key. Certificates are checked at the time of the boot
// entry, not now: an archived NSM document is valid only inside its
// leaf's window (about 3 h), so a boot entry dated outside the window of
// the document it carries is refused, whatever the document. No maximum
// age applies. TPM evidence has no wall time; its binding is the key it
// names.
//
// A log verified from its first entry trusts every key through its boot
// entry. A segment (Options.Start) may begin inside a run whose boot entry
// lies before the segment; that run is accepted only because the caller
// vouches for the start head (and, if given, Options.StartSignerKey).
//
// # Cross-party check
//
// A signature needs every signer, and each signer writes its own record:
// request, verdict, one session entry per digest at session start, and a
// result. CrossCheck holds the logs to each other (see Cross).
//
// # Export
//
// Export writes, per party, the entries that match a Filter as JSON Lines
// or CSV (each row carrying the raw signed entry, base64, so it can be
// checked on its own), the raw file of all the party's entries (a CBOR
// sequence, RFC 8742, of SignedEntry encodings, verifiable like the host's
// log), and export-manifest.json: files with SHA-256, filter, entry ranges
// and each party's head. SignExport signs the manifest's bytes with a
// governance key under domain ExportDomain; VerifyExport checks it all.
//
// # Ceremony transcript hash
//
// The transcript hash of a ceremony (Ceremonies) is SHA-256 over the
// concatenation, for each party in ascending party id order and, within a
// party, in seq order, of the 32-byte chain hashes (audit.Hash) of that
// party's entries recording the ceremony. Nothing else is hashed (no
// domain, no lengths): anyone holding the logs recomputes it with
// sha256sum over the concatenated hashes. It commits to the exact signed
// entries, so two auditors holding the same value saw the same record.
package auditlog
