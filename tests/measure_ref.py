#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Launch measurements of an OVMF image, computed independently of privmem.

The tests' reference for `privmem measure`: written from the published facts
(shared/reference/measure.md and tdx-snp.md: the OVMF footer GUID table, the
SEV metadata, the SEV-ES reset block, the SEV hash table, the TDVF metadata,
the SNP PAGE_INFO chain, the SEV-ES VMSA layout, the TDX MRTD records) with
Python's hashlib and struct, sharing no code with privmem.

  measure_ref.py snp FIRMWARE [--vcpus N] [--vcpu-sig SIG] [--guest-features X]
                     [--kernel K [--initrd I] [--append CMDLINE]]
  measure_ref.py tdx FIRMWARE [--add-then-extend]

Each prints the digest as lower-case hex on one line.
"""
import argparse
import hashlib
import struct
import sys
import uuid

FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"
SEV_ES_RESET_BLOCK = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
SEV_METADATA = "dc886566-984a-4798-a75e-5585a7bf67cc"
SEV_HASH_TABLE = "7255371f-3a3b-4b04-927b-1da6efa8d454"
TDX_METADATA = "e47a6535-984a-4798-865e-4685a7bf8ec2"

PAGE = 4096
FOUR_GB = 1 << 32


def guid_table(img):
    """{guid string: data bytes}, walking back from the footer entry."""
    end = len(img) - 0x20
    length, = struct.unpack("<H", img[end - 18:end - 16])
    if str(uuid.UUID(bytes_le=img[end - 16:end])) != FOOTER:
        raise SystemExit("no footer GUID")
    start = end - length
    table = {}
    pos = end - 18                      # the entries before the footer end here
    while pos > start:
        size, = struct.unpack("<H", img[pos - 18:pos - 16])
        guid = str(uuid.UUID(bytes_le=img[pos - 16:pos]))
        table[guid] = img[pos - size:pos - 18]
        pos -= size
    return table


# ---- SEV-SNP ----

T_NORMAL, T_VMSA, T_ZERO, T_UNMEASURED, T_SECRETS, T_CPUID = 1, 2, 3, 4, 5, 6


class Digest:
    def __init__(self):
        self.ld = bytes(48)

    def page(self, ptype, gpa, content=None):
        contents = hashlib.sha384(content).digest() if content is not None else bytes(48)
        info = self.ld + contents + struct.pack("<HBBBBBBQ", 0x70, ptype, 0, 0, 0, 0, 0, gpa)
        assert len(info) == 112
        self.ld = hashlib.sha384(info).digest()


def sev_sections(img, table):
    off, = struct.unpack("<I", table[SEV_METADATA][:4])
    base = len(img) - off
    sig, _length, _version, n = struct.unpack("<4sIII", img[base:base + 16])
    assert sig == b"ASEV"
    return [struct.unpack("<III", img[base + 16 + 12 * i:base + 28 + 12 * i]) for i in range(n)]


def seg(sel, attr, limit, base):
    return struct.pack("<HHIQ", sel, attr, limit, base)


def vmsa(eip, sig, features):
    """The SEV-ES save area at reset, as the VMM and KVM leave it (measure.md's table)."""
    v = bytearray(PAGE)

    def put(off, fmt, val):
        struct.pack_into(fmt, v, off, val)

    data = seg(0, 0x93, 0xFFFF, 0)
    v[0x00:0x10] = data                                   # ES
    v[0x10:0x20] = seg(0xF000, 0x9B, 0xFFFF, eip & 0xFFFF0000)
    for off in (0x20, 0x30, 0x40, 0x50):                   # SS, DS, FS, GS
        v[off:off + 16] = data
    v[0x60:0x70] = seg(0, 0, 0xFFFF, 0)                    # GDTR
    v[0x70:0x80] = seg(0, 0x82, 0xFFFF, 0)                 # LDTR
    v[0x80:0x90] = seg(0, 0, 0xFFFF, 0)                    # IDTR
    v[0x90:0xA0] = seg(0, 0x8B, 0xFFFF, 0)                 # TR
    put(0xD0, "<Q", 0x1000)          # EFER.SVME
    put(0x148, "<Q", 0x40)           # CR4.MCE
    put(0x158, "<Q", 0x10)           # CR0.ET
    put(0x160, "<Q", 0x400)          # DR7
    put(0x168, "<Q", 0xFFFF0FF0)     # DR6
    put(0x170, "<Q", 0x2)            # RFLAGS
    put(0x178, "<Q", eip & 0xFFFF)   # RIP
    put(0x268, "<Q", 0x0007040600070406)  # G_PAT
    put(0x310, "<Q", sig)            # RDX
    put(0x3B0, "<Q", features)       # SEV_FEATURES
    put(0x3E8, "<Q", 1)              # XCR0
    put(0x408, "<I", 0x1F80)         # MXCSR
    put(0x410, "<H", 0x037F)         # X87_FCW
    return bytes(v)


def guid_bytes(s):
    return uuid.UUID(s).bytes_le


def kernel_hash_table(kernel, initrd, append):
    """QEMU's padded SEV hash table: {guid, u16 len, 3 x {guid, u16 len, sha256}}."""
    cmdline = append.encode() + b"\0" if append else b"\0"
    entries = [
        ("97d02dd8-bd20-4c94-aa78-e7714d36ab2a", hashlib.sha256(cmdline).digest()),
        ("44baf731-3a2f-4bd7-9af1-41e29169781d",
         hashlib.sha256(open(initrd, "rb").read() if initrd else b"").digest()),
        ("4de79437-abd2-427f-b835-d5b172d2045b",
         hashlib.sha256(open(kernel, "rb").read()).digest()),
    ]
    body = b"".join(guid_bytes(g) + struct.pack("<H", 50) + h for g, h in entries)
    table = guid_bytes("9438d606-4f22-4cc9-b479-a793d411fd21") + struct.pack("<H", 18 + len(body)) + body
    return table + bytes(-len(table) % 16)


def snp(img, args):
    table = guid_table(img)
    d = Digest()
    gpa = FOUR_GB - len(img)
    for i in range(0, len(img), PAGE):
        d.page(T_NORMAL, gpa + i, img[i:i + PAGE])
    hashes = None
    if args.kernel:
        hashes = kernel_hash_table(args.kernel, args.initrd, args.append)
        base, _size = struct.unpack("<II", table[SEV_HASH_TABLE][:8])
    for sgpa, size, stype in sev_sections(img, table):
        if stype in (1, 4) or (stype == 0x10 and hashes is None):     # SEC_MEM, SVSM_CAA
            for p in range(sgpa, sgpa + size, PAGE):
                d.page(T_ZERO, p)
        elif stype == 2:
            d.page(T_SECRETS, sgpa)
        elif stype == 3:
            d.page(T_CPUID, sgpa)
        elif stype == 0x10:
            off = base & (PAGE - 1)
            content = bytes(off) + hashes + bytes(size - off - len(hashes))
            for p in range(0, size, PAGE):
                d.page(T_NORMAL, sgpa + p, content[p:p + PAGE])
        else:
            raise SystemExit("unknown SEV section type %d" % stype)
    ap_eip, = struct.unpack("<I", table[SEV_ES_RESET_BLOCK][:4])
    for cpu in range(args.vcpus):
        d.page(T_VMSA, 0xFFFFFFFFF000, vmsa(0xFFFFFFF0 if cpu == 0 else ap_eip, args.vcpu_sig,
                                            args.guest_features))
    return d.ld


# ---- TDX ----

def tdx(img, add_then_extend):
    table = guid_table(img)
    off, = struct.unpack("<I", table[TDX_METADATA][:4])
    base = len(img) - off
    sig, _length, _version, n = struct.unpack("<4sIII", img[base:base + 16])
    assert sig == b"TDVF"
    h = hashlib.sha384()

    def add(gpa):
        h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))

    def extend(gpa, chunk):
        h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104) + chunk)

    for i in range(n):
        data_off, raw, gpa, msize, stype, attr = struct.unpack(
            "<IIQQII", img[base + 16 + 32 * i:base + 48 + 32 * i])
        if attr & 2:                 # PAGE_AUG: added after launch, not in MRTD
            continue
        content = bytearray(msize)
        if stype in (0, 1):          # BFV, CFV: from the image
            content[:raw] = img[data_off:data_off + raw]
        measured = attr & 1
        pages = range(0, msize, PAGE)
        if add_then_extend:
            for p in pages:
                add(gpa + p)
            if measured:
                for c in range(0, msize, 256):
                    extend(gpa + c, bytes(content[c:c + 256]))
        else:
            for p in pages:
                add(gpa + p)
                if measured:
                    for c in range(p, p + PAGE, 256):
                        extend(gpa + c, bytes(content[c:c + 256]))
    return h.digest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["snp", "tdx"])
    ap.add_argument("firmware")
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--vcpu-sig", type=lambda s: int(s, 0), default=0x00800F12)   # EPYC-v4
    ap.add_argument("--guest-features", type=lambda s: int(s, 0), default=1)
    ap.add_argument("--kernel")
    ap.add_argument("--initrd")
    ap.add_argument("--append")
    ap.add_argument("--add-then-extend", action="store_true")
    args = ap.parse_args()
    img = open(args.firmware, "rb").read()
    out = snp(img, args) if args.kind == "snp" else tdx(img, args.add_then_extend)
    print(out.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
