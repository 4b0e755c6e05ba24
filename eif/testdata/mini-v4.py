#!/usr/bin/env python3
# Independent derivation of testdata/mini-v4.eif and its known answers,
# written from shared/notes/eif-format.md §1 and §2 only (no Go code):
# struct for the big-endian layout, zlib.crc32 for the CRC, hashlib for the
# PCRs. Run: python3 mini-v4.py mini-v4.eif
# Prints (and the Go tests pin):
#   883 [548, 566, 591, 843, 863] 3a83bf6d
#   PCR0 61fd2b06210a933b3db5e15c5752e394894bb097f7f1d96ad1f55a7525d0d7aa2c63b235f44420b12d8376cc392bdefb
#   PCR1 a6d35ce3e7ba80048a2b23da9b15063726a7cea90e16e9d6934e92a15aa1896fd54de706310e2fbc585d9c37db9c1805
#   PCR2 5f699ae4300525c628f5c96fc521729dd6ca1a2c07cb07b69e7ae9e3fa935cfd7cc83b3e26d89201a486d9db2405c562
#   empty 21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a
import hashlib
import struct
import sys
import zlib

kernel = b"KERNEL"
cmdline = b"console=ttyS0"
meta = (b'{"ImageName":"test","ImageVersion":"1.0","BuildMetadata":{"BuildTime":"1970-01-01T00:00:00+00:00",'
        b'"BuildTool":"eif_build","BuildToolVersion":"0.0.0","OperatingSystem":"Linux","KernelVersion":"0.0.0"},'
        b'"DockerInfo":null,"CustomMetadata":null}')
# nitro-cli's order since v1.2.0: kernel, cmdline, metadata, ramdisks.
sections = [(1, kernel), (2, cmdline), (5, meta), (3, b"RAMDISK0"), (3, b"RAMDISK1")]

offsets, sizes, off = [], [], 548
for _, data in sections:
    offsets.append(off)
    sizes.append(len(data))
    off += 12 + len(data)
pad = lambda xs: xs + [0] * (32 - len(xs))
header = (b".eif" + struct.pack(">HHQQHH", 4, 0, 1 << 30, 2, 0, len(sections))
          + struct.pack(">32Q", *pad(offsets)) + struct.pack(">32Q", *pad(sizes)) + struct.pack(">I", 0))
assert len(header) == 544
body = b"".join(struct.pack(">HHQ", t, 0, len(d)) + d for t, d in sections)
crc = zlib.crc32(header + body)  # header without its CRC field, then every section header and data
image = header + struct.pack(">I", crc) + body
print(len(image), offsets, "%08x" % crc)


def pcr(content):  # one extend from a zero register: SHA-384(0^48 || SHA-384(content))
    return hashlib.sha384(b"\0" * 48 + hashlib.sha384(content).digest()).hexdigest()


print("PCR0", pcr(kernel + cmdline + b"RAMDISK0" + b"RAMDISK1"))
print("PCR1", pcr(kernel + cmdline + b"RAMDISK0"))
print("PCR2", pcr(b"RAMDISK1"))
print("empty", pcr(b""))
if len(sys.argv) > 1:
    open(sys.argv[1], "wb").write(image)
