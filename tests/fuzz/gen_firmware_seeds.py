#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_firmware.c into tests/fuzz/corpus/firmware/.

Each seed is the tail of a firmware image (the target pads it in front to
whole pages), at most 512 bytes so that libFuzzer's -max_len keeps it whole:
a GUID table with the SEV-ES reset block, the SEV hash table and the SEV and
TDX metadata, whose offsets from the end point inside the seed.
"""
import os
import struct
import uuid

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "firmware")


def guid(s):
    return uuid.UUID(s).bytes_le


def entry(data, g):
    return data + struct.pack("<H", len(data) + 18) + guid(g)


def image(sev=True, tdx=True, reset=True, hashes=True):
    size = 512
    body = bytearray(size)
    sev_off, tdx_off = 64, 160          # file offsets of the metadata in the tail
    if sev:
        secs = [(0x800000, 0x1000, 1), (0x801000, 0x1000, 2), (0x802000, 0x1000, 3),
                (0x803000, 0x1000, 0x10), (0x804000, 0x1000, 4)]
        hdr = b"ASEV" + struct.pack("<III", 16 + 12 * len(secs), 1, len(secs))
        body[sev_off:sev_off + 16 + 12 * len(secs)] = hdr + b"".join(struct.pack("<III", *s) for s in secs)
    if tdx:
        secs = [(0, 0x40, 0xfffff000, 0x1000, 0, 1), (0, 0, 0x810000, 0x2000, 3, 0),
                (0, 0, 0x812000, 0x1000, 2, 0), (0, 0, 0x900000, 0x1000, 4, 2)]
        hdr = b"TDVF" + struct.pack("<III", 16 + 32 * len(secs), 1, len(secs))
        body[tdx_off:tdx_off + 16 + 32 * len(secs)] = hdr + b"".join(struct.pack("<IIQQII", *s) for s in secs)
    table = b""
    if reset:
        table += entry(struct.pack("<I", 0x80b004), "00f771de-1a7e-4fcb-890e-68c77e2fb44e")
    if hashes:
        table += entry(struct.pack("<II", 0x803100, 0x400), "7255371f-3a3b-4b04-927b-1da6efa8d454")
    if sev:
        table += entry(struct.pack("<I", size - sev_off), "dc886566-984a-4798-a75e-5585a7bf67cc")
    if tdx:
        table += entry(struct.pack("<I", size - tdx_off), "e47a6535-984a-4798-865e-4685a7bf8ec2")
    table += struct.pack("<H", len(table) + 18) + guid("96b582de-1fb2-45f7-baea-a366c55a082d")
    end = size - 0x20
    body[end - len(table):end] = table
    return bytes(body)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "seed-sev-and-tdx": image(),
        "seed-sev-only": image(tdx=False),
        "seed-tdx-only": image(sev=False, reset=False, hashes=False),
        "seed-no-reset-block": image(reset=False, hashes=False),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
