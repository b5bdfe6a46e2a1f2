#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seeds of fuzz_interpose.c into tests/fuzz/corpus/interpose/.

An input of fuzz_interpose is a stream of one-byte operations (the byte
modulo the number of operations) with their operand bytes; the numbers
below are the target's tables (ops[], cmds[], enum ptr_kind), and the
command indices are read from fuzz_interpose.c's cmds[] so that the seeds
follow it. Each seed is a short program: a VM of each type set up and run,
argument pointers of every kind, descriptors opened, duplicated and closed
in odd ways, guest_memfd views mapped and cut, NUMA policies on them, and
the parsers' strings.
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "interpose")

# ops[] of fuzz_interpose.c, then op_unmap and op_advise.
OPS = ["open", "ioctl", "ioctl2", "ioctl3", "mmap", "fallocate", "rw", "stat", "close",
       "dup", "close_range", "fcntl", "setup", "parse", "run", "numa", "unmap", "advise"]
# enum ptr_kind
P_BUF, P_FITS, P_STRADDLE, P_NULL, P_GUARD, P_RO, P_UNMAPPED, P_NONCANON, P_KERNEL, P_MAPPING = range(10)
# pick_fd's byte: the input's descriptor of the kind wanted (i-th), -1, a closed number, /dev/null
def fd(i=0):
    return 0x60 + i
FD_NEG, FD_CLOSED, FD_NULL = 0x00, 0x20, 0x40
SW, DEFAULT, SNP, TDX = 0, 1, 2, 3


def cmd_index():
    src = open(os.path.join(HERE, "fuzz_interpose.c")).read()
    table = src[src.index("static const struct cmd cmds[] = {"):]
    table = table[:table.index("};")]
    rows = re.findall(r"\{ (\w+), (K_\w+),", table)
    return {(name, kind): i for i, (name, kind) in enumerate(rows)}


CMDS = cmd_index()


def op(name, *operands):
    return bytes([OPS.index(name)]) + bytes(operands)


# The input bytes fill_arg copies into a struct the kernel reads (its
# default case: the struct's first 64 bytes at most).
RAW_IN = {"KVM_SET_REGS": 64, "KVM_SET_SREGS": 64, "KVM_PRE_FAULT_MEMORY": 64, "PM_GUEST_MEMFD_PIN": 16}


def ioctl(name, kind, fdb, ptr, *fill):
    """A KVM number with a template argument (fill: the template's bytes)."""
    fill = bytes(fill)
    if name in RAW_IN:
        fill = (fill + bytes(RAW_IN[name]))[:RAW_IN[name]]
    return op("ioctl", CMDS[(name, kind)], fdb, ptr) + fill


def setup(vm_type, vcpu_id=0):
    return op("setup", vm_type | (vcpu_id << 4))


def parse(kind, s):
    s = s.encode()
    return op("parse", kind, len(s)) + s


SEEDS = {
    # A software-protected VM: registers, a private range, a run, host
    # writes into its guest_memfd, a punch and the file's statistics.
    "seed-sw-run": setup(SW)
    + ioctl("KVM_GET_REGS", "K_VCPU", fd(), P_BUF)
    + ioctl("KVM_SET_REGS", "K_VCPU", fd(), P_BUF, *range(16))
    + ioctl("KVM_SET_MEMORY_ATTRIBUTES", "K_VM", fd(), P_BUF, 0x40 | (2 << 3) | 2)
    + op("run", fd())
    + op("rw", 3 | (3 << 2) | (9 << 4), P_BUF, fd())           # pwrite 4096 bytes
    + op("fallocate", 1 | (0 << 3), 0, fd())                    # punch 4K at 0
    + ioctl("PM_GUEST_MEMFD_GET_STATS", "K_GMEM", fd(), P_FITS)
    + ioctl("PM_KVM_GET_VM_STATS", "K_VM", fd(), P_BUF),
    # SNP and TDX VMs: their commands with data pointers of each kind.
    "seed-snp-tdx-commands": setup(SNP)
    + ioctl("KVM_MEMORY_ENCRYPT_OP", "K_VM", fd(), P_BUF, 0x00 | (P_BUF << 4), 0, 0, 0)
    + ioctl("KVM_MEMORY_ENCRYPT_OP", "K_VM", fd(), P_BUF, 0x03 | (P_BUF << 4), P_RO, P_GUARD, 3, 1, 2)
    + ioctl("KVM_MEMORY_ENCRYPT_OP", "K_VM", fd(), P_BUF, 0x01 | (P_STRADDLE << 4))
    + setup(TDX, 1)
    + ioctl("KVM_MEMORY_ENCRYPT_OP", "K_VM", fd(1), P_BUF, 0x08 | 1 | (P_BUF << 4), P_BUF, 4, 0, 2)
    + ioctl("KVM_MEMORY_ENCRYPT_OP", "K_VCPU", fd(1), P_BUF, 0x0b | (P_UNMAPPED << 4))
    + ioctl("PM_KVM_GET_MEASUREMENT", "K_VM", fd(), P_RO)
    + ioctl("PM_KVM_GET_MODEL_STATS", "K_VM", fd(1), P_BUF),
    # Every kind of bad pointer on calls that read, write or both.
    "seed-bad-pointers": setup(DEFAULT)
    + ioctl("KVM_GET_REGS", "K_VCPU", fd(), P_STRADDLE)
    + ioctl("KVM_SET_REGS", "K_VCPU", fd(), P_RO, *range(16))
    + ioctl("KVM_GET_SREGS", "K_VCPU", fd(), P_NONCANON)
    + ioctl("KVM_GET_MSRS", "K_VCPU", fd(), P_KERNEL, 2, *range(56))
    + ioctl("KVM_SET_CPUID2", "K_VCPU", fd(), P_FITS, 4, *range(56))
    + ioctl("PM_KVM_GET_POOL_STATS", "K_SYS", fd(), P_GUARD)
    + ioctl("PM_KVM_GET_VM_STATS", "K_VM", fd(), P_NULL)
    + ioctl("KVM_PRE_FAULT_MEMORY", "K_VCPU", fd(), P_UNMAPPED)
    + ioctl("KVM_SET_USER_MEMORY_REGION2", "K_VM", fd(), P_STRADDLE, 0x89, 3, fd(), 0)
    + ioctl("PM_GUEST_MEMFD_PIN", "K_GMEM", fd(), P_RO, *range(16))
    + op("stat", 1 | (P_RO << 2), fd())
    + op("stat", 2 | (P_STRADDLE << 2) | 0x80, fd()),
    # KVM's numbers with other sizes and directions, and any number.
    "seed-wrong-numbers": setup(SW)
    + ioctl("KVM_GET_REGS", "K_VCPU", fd(), (6 << 5) | P_BUF, 0x10)
    + op("ioctl", CMDS[("KVM_SET_SREGS", "K_VCPU")], fd(), (7 << 5) | 1 | 0x10, 2) + bytes(64)  # direction: read
    + op("ioctl", CMDS[("KVM_GET_API_VERSION", "K_SYS")] | 0x80, fd(), (5 << 5), 0x0d, 0xae, 0, 0, 0, 0, 0, 0)
    + ioctl("KVM_CREATE_VCPU", "K_VM", fd(), 0x10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0)
    + ioctl("KVM_CHECK_EXTENSION", "K_VM", FD_NULL, 5)
    + ioctl("KVM_RUN", "K_VCPU", FD_CLOSED, 0),
    # Descriptors: every way to open /dev/kvm and module parameters, dups
    # into the reserved range, close_range, fcntl, calls on closed numbers.
    "seed-descriptors": op("open", 0, 0)
    + op("open", 1 | (1 << 3), 0)
    + op("open", 2 | (3 << 3), 1)
    + op("open", 3, 2) + op("open", 4 | (2 << 3), 2) + op("open", 6, 0)
    + op("open", 0 | (7 << 3), 0)
    + op("dup", (1 << 6) | (3 << 2), fd())
    + op("dup", (2 << 6) | (4 << 2) | 1, fd())
    + op("dup", (3 << 6) | (5 << 2), fd(1))
    + op("dup", 0, fd(2))
    + op("fcntl", 0, fd()) + op("fcntl", 1 | (2 << 2) | 0x10, fd(1))
    + ioctl("KVM_CREATE_VM", "K_SYS", fd(1), 1)
    + op("close_range", 3 | (2 << 4))
    + op("close", 0x60)
    + ioctl("KVM_GET_API_VERSION", "K_SYS", FD_CLOSED, 0)
    + op("close_range", 0x80 | 4 | (1 << 4)),
    # guest_memfd views: mapped (and MAP_FIXED inside the reserved region),
    # cut, advised; kvm_run mappings; mappings handed to ioctls.
    "seed-views": setup(SW)
    + op("mmap", 0 | (1 << 5), 0, fd())                          # 2 pages, shared, rw
    + op("mmap", 0 | (7 << 5), 2, fd(), 10)                      # 8 pages MAP_FIXED at page 10
    + op("mmap", 1 | (0 << 5), 0, fd())                          # a vCPU's kvm_run
    + op("mmap", 0 | (2 << 5) | (1 << 1), 4 | (1 << 3), fd())   # 2M read-only, populated
    + op("mmap", 0, 0x40 | 0x80, fd())                           # offset 1: EINVAL
    + ioctl("KVM_GET_REGS", "K_VCPU", fd(), P_MAPPING)
    + op("advise", 1, 0)                                          # MADV_REMOVE of the whole
    + op("unmap", 2, 3 | (2 << 2))                                # a page from the middle
    + op("unmap", 1, 1)
    + op("advise", 4, 3 | (4 << 2))
    + op("unmap", 3, 0),
    # NUMA policies on a view and on other memory, read back.
    "seed-numa": setup(SW)
    + op("mmap", 0 | (3 << 5), 0, fd())                           # 3 pages
    + op("numa", 1 | (2 << 1), 1, 1, 1)                           # mbind BIND node 0
    + op("numa", 0 | (1 << 1) | (P_BUF << 4), 1, 2 | 1, 0)        # get_mempolicy F_ADDR
    + op("numa", 0 | (2 << 1) | (P_BUF << 4), 1, 0, 0)            # F_ADDR | F_NODE
    + op("numa", 1 | (3 << 1), 0x60, 2 | (P_STRADDLE << 2), 3)    # on the target's memory
    + op("numa", 0 | (3 << 1) | (P_NULL << 4), 0x40, 3, 0)        # MEMS_ALLOWED, reserved memory
    + op("numa", 1 | (6 << 1), 1, 0xc1, 1),                       # bad mode and flags
    # The parsers: placeholder links, paths, sizes and VM type lists.
    "seed-parsers": parse(0, "/memfd:privmem-kvm:vm:rw (deleted)")
    + parse(0, "/memfd:privmem-kvm:gmem:r")
    + parse(0, "/memfd:privmem-kvm:vcpu:rwx")
    + parse(1, "/dev/../dev/./kvm")
    + parse(2 | 8, "kvm")
    + parse(1, "//sys/module/kvm/parameters/../parameters/tdp_mmu")
    + parse(3, "/sys/module/kvm_amd/parameters/sev_snp")
    + parse(3 | 8 | 16, "../sys/module/kvm_intel/parameters/tdx")
    + parse(4, "64M") + parse(4, "18446744073709551615K") + parse(4, "1T")
    + parse(5, "0,1,5,16") + parse(6, "snp,,tdx,9999999999") + parse(7, ""),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        assert len(data) <= 512, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
