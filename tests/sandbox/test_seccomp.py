"""The seccomp filter: denied syscalls answer EPERM inside a real sandbox, a foreign
architecture's syscall kills the process, ordinary workloads still run; and the BPF program's
decisions for both arches, checked with a small interpreter (aarch64 cannot run here)."""

from __future__ import annotations

import asyncio
import errno
import json
import platform
import shutil
import struct
from collections.abc import Iterator

import pytest

from keel.sandbox import Sandbox, for_thread, seccomp
from keel.settings.sandbox import SandboxLimits, SandboxSettings
from tests.support.sandbox import traversable_dir

X86 = platform.machine() == "x86_64"
KILL, ALLOW = seccomp.RET_KILL_PROCESS, seccomp.RET_ALLOW
EPERM, ENOSYS = seccomp.RET_ERRNO | errno.EPERM, seccomp.RET_ERRNO | errno.ENOSYS

# Each syscall made with libc's syscall(2); the script prints {name: errno or 0}.
PROBE = """
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return ctypes.get_errno() if r == -1 else 0
print(json.dumps({name: call(nr, *args) for name, (nr, args) in CALLS.items()}))
"""
CALLS_X86_64 = {
    "ptrace_traceme": (101, (0, 0, 0, 0)),
    "unshare_newuser": (272, (0x10000000,)),
    "clone_newuser": (56, (0x10000000 | 17, 0, 0, 0, 0)),
    "clone3": (435, (0, 0)),
    "io_uring_setup": (425, (1, 0)),
    "keyctl": (250, (0, 0)),
    "mount": (165, (0, 0, 0, 0, 0)),
    "perf_event_open": (298, (0, 0, -1, -1, 0)),
    "bpf": (321, (0, 0, 0)),
    "x32_getpid": (0x40000000 | 39, ()),
    "tiocsti": (16, (1, 0x5412, 0)),
    "personality_query": (135, (0xFFFFFFFF,)),
    "getpid": (39, ()),
}
# i386 getpid through `int 0x80`, from a page of machine code: mov eax, 20; int 0x80; ret.
I386 = """
import ctypes, mmap
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(bytes.fromhex("b814000000cd80c3"))
print("survived", ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))())
"""


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    limits = SandboxLimits(wall_seconds=20.0, processes=64)
    with traversable_dir("keel-seccomp-") as base:
        yield for_thread("seccomp", SandboxSettings(root=base / "ws", limits=limits))


def run(sb: Sandbox, cmd: str) -> tuple[int, str]:
    result = asyncio.run(sb.run(cmd))
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.skipif(not X86, reason="syscall numbers of x86_64")
def test_denied_syscalls_get_eperm_inside_the_sandbox(sb: Sandbox) -> None:
    sb.write("probe.py", f"CALLS = {CALLS_X86_64!r}\n{PROBE}")
    code, out = run(sb, "python3 probe.py")
    assert code == 0, out
    got = json.loads(out)
    expected = dict.fromkeys(CALLS_X86_64, errno.EPERM)
    expected |= {"clone3": errno.ENOSYS, "personality_query": 0, "getpid": 0}
    assert got == expected


@pytest.mark.skipif(not X86, reason="i386 on x86_64")
def test_a_foreign_architecture_syscall_kills_the_process(sb: Sandbox) -> None:
    sb.write("i386.py", I386)
    code, out = run(sb, "python3 i386.py")
    assert code == 128 + 31 and "survived" not in out, (code, out)  # SIGSYS


def test_ordinary_workloads_still_run(sb: Sandbox) -> None:
    work = (
        "import subprocess, threading\n"
        "box = []\nts = [threading.Thread(target=box.append, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "out = subprocess.run(['sh', '-c', 'echo a b | tr a-z A-Z'], capture_output=True)\n"
        "print(sum(box), out.stdout.decode().strip())\n"
    )
    sb.write("work.py", work)
    code, out = run(sb, "python3 work.py && seq 5 | sort -r | head -2 | wc -l")
    assert code == 0 and out.split() == ["28", "A", "B", "2"], out
    if shutil.which("pip3", path="/usr/local/bin:/usr/bin:/bin"):
        code, out = run(sb, "pip3 --version")
        assert code == 0 and "pip" in out, out


def evaluate(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Run the classic-BPF program over one seccomp_data (only the opcodes the filter uses)."""
    full = (list(args) + [0] * 6)[:6]
    data = struct.pack("=iIQ6Q", nr, arch, 0, *[a & (1 << 64) - 1 for a in full])
    insns = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == seccomp.BPF_LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == seccomp.BPF_RET_K:
            return int(k)
        elif code == seccomp.BPF_JA:
            pc += k
        else:
            taken = {seccomp.BPF_JEQ_K: acc == k, seccomp.BPF_JGE_K: acc >= k,
                     seccomp.BPF_JSET_K: bool(acc & k)}[code]  # fmt: skip
            pc += jt if taken else jf


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_the_program_decides_per_architecture(machine: str) -> None:
    prog = seccomp.program(machine)
    arch = seccomp.ARCHES[machine]
    nums = arch.numbers
    for name in seccomp.DENIED:
        if name in nums:
            assert evaluate(prog, nums[name], arch.audit) == EPERM, name
    assert evaluate(prog, nums["clone3"], arch.audit) == ENOSYS
    assert evaluate(prog, nums["clone"], arch.audit, (0x10000000 | 17,)) == EPERM
    assert evaluate(prog, nums["clone"], arch.audit, (0x01200011,)) == ALLOW  # fork's flags
    assert evaluate(prog, nums["personality"], arch.audit, (0x20000,)) == ALLOW
    assert evaluate(prog, nums["personality"], arch.audit, (0x0400000,)) == EPERM
    assert evaluate(prog, nums["ioctl"], arch.audit, (1, 0x5412)) == EPERM
    assert evaluate(prog, nums["ioctl"], arch.audit, (1, 0x5401)) == ALLOW  # TCGETS
    assert evaluate(prog, 0, arch.audit) == ALLOW  # read / io_setup
    others = {a.audit for a in seccomp.ARCHES.values()} - {arch.audit} | {0x40000003}  # i386
    for other in others:
        assert evaluate(prog, 0, other) == KILL
    if arch.x32:
        assert evaluate(prog, 0x40000000 | 39, arch.audit) == EPERM
