"""The sandbox's seccomp filter: a classic-BPF program assembled here from the kernel's documented
ABI (no binding needed) and handed to bwrap with `--seccomp FD`.

Policy, in the spirit of Docker's default profile: a deny-list of syscalls a sandboxed command has
no use for and that widen the kernel's attack surface (debugging other processes, kernel modules,
BPF, namespaces, mounts, keyrings, io_uring, the clock, ...), refused with EPERM; `clone` with a
namespace flag refused; `clone3` answers ENOSYS (its flags are behind a pointer the filter cannot
read) so libc falls back to `clone`; a syscall of another architecture (i386 on x86_64) kills the
process, and x32 syscalls on x86_64 are refused. Everything else is allowed."""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import platform
import struct

# linux/filter.h: classic BPF opcodes.
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
BPF_JA = 0x05 | 0x00  # BPF_JMP | BPF_JA: jump k instructions
BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

# linux/seccomp.h: actions.
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16  # args[i] low 32 bits at 16 + 8 * i (both supported arches are little-endian)

# linux/audit.h: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH_X86_64 = 62 | 0x80000000 | 0x40000000
AUDIT_ARCH_AARCH64 = 183 | 0x80000000 | 0x40000000
X32_SYSCALL_BIT = 0x40000000

# linux/sched.h: the namespace flags of clone(2).
CLONE_NEW = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
TIOCSTI = 0x5412
# personality(2) values a program may still ask for (Docker's list): PER_LINUX, UNAME26,
# ADDR_NO_RANDOMIZE (and with UNAME26), and 0xffffffff (query only).
PERSONALITY_OK = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root", "move_mount",
    "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr", "unshare", "setns",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "open_by_handle_at",
    "name_to_handle_at", "reboot", "swapon", "swapoff", "acct", "iopl", "ioperm",
    "lookup_dcookie", "quotactl", "quotactl_fd", "settimeofday", "clock_settime", "adjtimex",
    "clock_adjtime", "syslog", "vhangup",
)  # fmt: skip

# Syscall numbers: arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h.
X86_64 = {
    "ioctl": 16, "clone": 56, "ptrace": 101, "syslog": 103, "personality": 135, "vhangup": 153,
    "pivot_root": 155, "adjtimex": 159, "acct": 163, "settimeofday": 164, "mount": 165,
    "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212,
    "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip
AARCH64 = {
    "lookup_dcookie": 18, "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41,
    "vhangup": 58, "quotactl": 60, "acct": 89, "personality": 92, "unshare": 97,
    "kexec_load": 104, "init_module": 105, "delete_module": 106, "clock_settime": 112,
    "syslog": 116, "ptrace": 117, "reboot": 142, "settimeofday": 170, "adjtimex": 171,
    "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224,
    "swapoff": 225, "perf_event_open": 241, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "clock_adjtime": 266, "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271,
    "finit_module": 273, "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Arch:
    audit: int
    numbers: dict[str, int]
    x32: bool  # refuse syscall numbers with the x32 bit


ARCHES = {
    "x86_64": Arch(AUDIT_ARCH_X86_64, X86_64, x32=True),
    "aarch64": Arch(AUDIT_ARCH_AARCH64, AARCH64, x32=False),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def _errno(value: int) -> int:
    return RET_ERRNO | value


def _arg_checks(arch: Arch) -> list[tuple[int, int, int, int]]:
    """The syscalls decided by an argument (each block ends in a return): clone with a namespace
    flag, personality other than the allowed values, ioctl TIOCSTI."""
    out = []
    # clone(flags, ...): flags is arg 0 on both arches.
    out += [
        _insn(BPF_JEQ_K, arch.numbers["clone"], 0, 4),
        _insn(BPF_LD_W_ABS, OFF_ARGS),
        _insn(BPF_JSET_K, CLONE_NEW, 0, 1),
        _insn(BPF_RET_K, _errno(errno.EPERM)),
        _insn(BPF_RET_K, RET_ALLOW),
    ]
    n = len(PERSONALITY_OK)
    out.append(_insn(BPF_JEQ_K, arch.numbers["personality"], 0, n + 3))
    out.append(_insn(BPF_LD_W_ABS, OFF_ARGS))
    out += [_insn(BPF_JEQ_K, value, n - i, 0) for i, value in enumerate(PERSONALITY_OK)]
    out += [_insn(BPF_RET_K, _errno(errno.EPERM)), _insn(BPF_RET_K, RET_ALLOW)]
    # ioctl(fd, cmd): the kernel reads cmd as an unsigned int (the low 32 bits).
    out += [
        _insn(BPF_JEQ_K, arch.numbers["ioctl"], 0, 4),
        _insn(BPF_LD_W_ABS, OFF_ARGS + 8),
        _insn(BPF_JEQ_K, TIOCSTI, 0, 1),
        _insn(BPF_RET_K, _errno(errno.EPERM)),
        _insn(BPF_RET_K, RET_ALLOW),
    ]
    return out


def instructions(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter for `machine` (`platform.machine()`), as (code, jt, jf, k) tuples."""
    arch = ARCHES.get(machine)
    if arch is None:
        raise ValueError(f"no seccomp filter for the {machine} architecture")
    prog = [
        _insn(BPF_LD_W_ABS, OFF_ARCH),
        _insn(BPF_JEQ_K, arch.audit, 1, 0),
        _insn(BPF_RET_K, RET_KILL_PROCESS),
        _insn(BPF_LD_W_ABS, OFF_NR),
    ]
    if arch.x32:
        prog += [_insn(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1), _insn(BPF_RET_K, _errno(errno.EPERM))]
    prog += [_insn(BPF_JEQ_K, arch.numbers["clone3"], 0, 1), _insn(BPF_RET_K, _errno(errno.ENOSYS))]
    denied = [arch.numbers[name] for name in DENIED if name in arch.numbers]
    # Each match jumps to the shared EPERM return right after the list.
    for i, nr in enumerate(denied):
        prog.append(_insn(BPF_JEQ_K, nr, len(denied) - i, 0))
    prog += [_insn(BPF_JA, 1), _insn(BPF_RET_K, _errno(errno.EPERM))]
    prog += _arg_checks(arch)
    prog.append(_insn(BPF_RET_K, RET_ALLOW))
    return prog


@functools.cache
def program(machine: str | None = None) -> bytes:
    """The filter as `struct sock_filter[]` bytes, what `bwrap --seccomp FD` reads."""
    insns = instructions(machine or platform.machine())
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in insns)


def filter_fd() -> int:
    """A pipe's read end holding the program (the write end closed): pass it to bwrap."""
    data = program()
    read, write = os.pipe()
    try:
        os.write(write, data)  # a few hundred bytes: far below a pipe's capacity
    finally:
        os.close(write)
    return read
