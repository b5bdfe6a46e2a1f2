#!/usr/bin/env python3
# Known answers for Arm CCA's Realm Initial Measurement (RIM), computed
# independently of privmem's C code: the descriptors are laid out by hand
# from shared/reference/cca-rim.md with struct.pack and hashed with hashlib.
# tests/test_cca_rmm.c and tests/test_cca.c embed the values this prints;
# run it again to check them:  python3 scripts/cca_rim_kat.py
import hashlib
import struct

SHA256, SHA512 = 0, 1


def H(algo, data):
    return (hashlib.sha256 if algo == SHA256 else hashlib.sha512)(data).digest()


def slot64(digest):
    # Measurement fields are 64 bytes; SHA-256 fills the first 32.
    return digest + bytes(64 - len(digest))


def realm_params(algo, s2sz=40, flags=0, sve_vl=0, num_bps=1, num_wps=1, pmu=0):
    p = bytearray(4096)
    struct.pack_into('<Q', p, 0x00, flags)
    struct.pack_into('<I', p, 0x08, s2sz)       # u32 in an 8-byte slot
    struct.pack_into('<I', p, 0x10, sve_vl)
    struct.pack_into('<I', p, 0x18, num_bps)
    struct.pack_into('<I', p, 0x20, num_wps)
    struct.pack_into('<I', p, 0x28, pmu)
    p[0x30] = algo
    return H(algo, bytes(p))


def desc(dtype, rim):
    d = bytearray(256)
    d[0] = dtype
    struct.pack_into('<Q', d, 0x08, 0x100)
    d[0x10:0x50] = slot64(rim)
    return d


def data(algo, rim, ipa, flags, content):
    d = desc(0, rim)
    struct.pack_into('<QQ', d, 0x50, ipa, flags)
    if flags == 1:
        d[0x60:0xA0] = slot64(H(algo, content))
    return H(algo, bytes(d))


def rec(algo, rim, flags, pc, gprs):
    r = bytearray(4096)
    struct.pack_into('<Q', r, 0x000, flags)
    struct.pack_into('<Q', r, 0x200, pc)
    struct.pack_into('<8Q', r, 0x300, *gprs)
    d = desc(1, rim)
    d[0x50:0x90] = slot64(H(algo, bytes(r)))
    return H(algo, bytes(d))


def ripas(algo, rim, base, top):
    d = desc(2, rim)
    struct.pack_into('<QQ', d, 0x50, base, top)
    return H(algo, bytes(d))


def pattern_page():
    return bytes(i & 0xff for i in range(4096))


GPRS = [0x1234, 0, 0, 0, 0, 0, 0, 7]


def scenario_a(algo, v1=True):
    """RIPAS [0, 0x3000) as three 4K entries (a level-3 RTT exists at 0),
    DATA 0x1000 measured (the pattern page), DATA 0x2000 not measured
    (0xAB bytes), one runnable REC (pc 0x80000000, x0 0x1234, x7 7) and one
    that is not runnable (not measured)."""
    rim = realm_params(algo)
    if v1:
        for b in (0, 0x1000, 0x2000):
            rim = ripas(algo, rim, b, b + 0x1000)
    rim = data(algo, rim, 0x1000, 1, pattern_page())
    rim = data(algo, rim, 0x2000, 0, bytes([0xAB]) * 4096)
    rim = rec(algo, rim, 1, 0x80000000, GPRS)
    return rim


def scenario_b(algo):
    """RIPAS [0x200000, 0x600000) as two 2M entries (a level-2 RTT at 0),
    then DATA 0x200000 measured with the pattern page."""
    rim = realm_params(algo)
    for b in (0x200000, 0x400000):
        rim = ripas(algo, rim, b, b + 0x200000)
    rim = data(algo, rim, 0x200000, 1, pattern_page())
    return rim


def scenario_c(algo):
    """KVM's build through the uAPI (tests/test_cca.c): KVM_ARM_RMI_POPULATE
    of 0x1000 with MEASURE (the pattern page), then of 0x2000 without
    (0xAB bytes), each RTT_INIT_RIPAS'd first as one 4K entry; one vCPU:
    one runnable REC with pc 0 and zero registers."""
    rim = realm_params(algo)
    rim = ripas(algo, rim, 0x1000, 0x2000)
    rim = data(algo, rim, 0x1000, 1, pattern_page())
    rim = ripas(algo, rim, 0x2000, 0x3000)
    rim = data(algo, rim, 0x2000, 0, bytes([0xAB]) * 4096)
    rim = rec(algo, rim, 1, 0, [0] * 8)
    return rim


if __name__ == '__main__':
    print('rim0 sha256   ', realm_params(SHA256).hex())
    print('rim0 sha512   ', realm_params(SHA512).hex())
    print('A sha256 v1.0 ', scenario_a(SHA256).hex())
    print('A sha512 v1.0 ', scenario_a(SHA512).hex())
    print('A sha256 v2.0 ', scenario_a(SHA256, v1=False).hex())
    print('B sha256 v1.0 ', scenario_b(SHA256).hex())
    print('C sha256 v1.0 ', scenario_c(SHA256).hex())
    print('C sha512 v1.0 ', scenario_c(SHA512).hex())
