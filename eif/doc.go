// Package eif reads, writes, measures and signs AWS Nitro Enclave Image
// Files (EIF), so that anyone can rebuild the sealsign enclave image and
// recompute the PCRs an attestation pins, without nitro-cli or Docker.
//
// The format, the PCR formulas and the signature layout follow the research
// notes in shared/notes/eif-format.md, which cite AWS's
// aws-nitro-enclaves-image-format (the Rust reference), nitro-cli and
// QEMU's hw/core/eif.c; section numbers in comments (§1.4, …) refer to them.
//
// Reading: Read (or the streaming Reader) checks everything an image can
// get wrong — magic, version, flags, section count, types, order and sizes,
// that the header offsets and a sequential walk agree, the CRC-32 — and
// computes PCR0, PCR1, PCR2 and PCR8 while the bytes stream past, in
// constant memory. Untrusted sizes are compared with limits and with the
// bytes that actually arrive; they never size an allocation.
//
// Writing: Build writes a version 4 image in nitro-cli's section order with
// its metadata JSON; with a fixed BuildTime the output is byte-identical
// across builds. WriteBootstrapRamdisk reproduces nitro-cli's first ramdisk
// byte for byte from AWS's init and nsm.ko (package eif/cpio), and
// WriteAppRamdisk packs one static binary for AWS's init to run.
//
// Signing: a Signer adds the COSE_Sign1 signature section over PCR0;
// Image.VerifySignature checks it by rebuilding the expected payload.
package eif
