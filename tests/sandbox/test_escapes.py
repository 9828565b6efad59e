"""The escape suite: each way out of the sandbox tried, each with its asserted outcome. Drives
`keel.sandbox` directly (no server); small limits keep it fast."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.errors import InvalidInput
from keel.sandbox import Sandbox, for_thread
from keel.settings.sandbox import SandboxLimits, SandboxSettings
from tests.support.sandbox import traversable_dir

LIMITS = SandboxLimits(
    cpu_seconds=2,
    wall_seconds=10.0,
    memory_bytes=256 << 20,
    processes=32,
    open_files=64,
    output_bytes=4096,
    file_bytes=1 << 20,
    workspace_bytes=8 << 20,
)
SECRET = "keel-host-secret-7f3a"


@pytest.fixture
def root() -> Iterator[Path]:
    """The workspaces' root, a sentinel beside it standing in for the Keel database (under
    /tmp: the sandbox's user must be able to traverse to the root, docs/sandbox.md)."""
    with traversable_dir("keel-sandbox-") as base:
        sentinel = base / "keel.db"
        sentinel.write_text(SECRET)
        os.chmod(sentinel, 0o644)  # readable by anyone on the host: only the sandbox hides it
        yield base / "workspaces"
        assert sentinel.read_text() == SECRET  # the host is intact after every case


@pytest.fixture
def settings(root: Path) -> SandboxSettings:
    return SandboxSettings(root=root, limits=LIMITS)


@pytest.fixture
def sb(settings: SandboxSettings) -> Sandbox:
    return for_thread("thread-a", settings)


def run(sb: Sandbox, cmd: str) -> tuple[int, str]:
    result = asyncio.run(sb.run(cmd))
    return result.exit_code, result.stdout + result.stderr


def test_commands_run_in_their_workspace(sb: Sandbox) -> None:
    sb.write("hello.py", "print(open('data.txt').read())")
    sb.write("data.txt", "42")
    code, out = run(sb, "python3 hello.py && pwd && id -u && env | sort")
    assert code == 0
    lines = out.split()
    assert lines[:3] == ["42", "/workspace", "65534"]
    names = {line.split("=")[0] for line in lines[3:]}
    assert names <= {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_"}, names  # no host variable


def test_network_egress_fails(sb: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        probe = (
            "import socket\n"
            "for make in (lambda: socket.create_connection(('127.0.0.1', %d), 2),\n"
            "             lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'x', ('8.8.8.8', 53)),\n"
            "             lambda: socket.getaddrinfo('example.com', 80)):\n"
            "    try:\n        make(); print('OPEN')\n"
            "    except OSError as e:\n        print('BLOCKED', type(e).__name__)\n"
        ).replace("%d", str(port))
        sb.write("net.py", probe)
        code, out = run(sb, "python3 net.py")
        assert code == 0 and out.count("BLOCKED") == 3, out
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's listener
    finally:
        listener.close()


def test_host_files_are_not_visible(sb: Sandbox, settings: SandboxSettings) -> None:
    other = for_thread("thread-b", settings)
    other.write("private.txt", SECRET)
    beside = settings.root.parent
    outside = (f"{beside}/keel.db", f"{settings.root}/thread-b/private.txt", "/etc/shadow")
    for path in ("../keel.db", "../thread-b/private.txt", *outside):
        code, out = run(sb, f"cat {path}")
        assert code != 0 and SECRET not in out, (path, out)
    os.environ["KEEL_SANDBOX_SENTINEL"] = SECRET  # in Keel's environment, never the sandbox's
    try:
        code, out = run(sb, "tr '\\0' '\\n' < /proc/1/environ; ls /proc | grep -c '^[0-9]'")
    finally:
        del os.environ["KEEL_SANDBOX_SENTINEL"]
    assert code == 0 and SECRET not in out and "KEEL" not in out  # pid 1 is the sandbox's
    assert int(out.split()[-1]) <= 5  # only the sandbox's own processes
    code, out = run(sb, "ls /proc/self/fd")
    assert out.split() == ["0", "1", "2", "3"]  # no descriptor of Keel's (3: ls's own listing)


def test_link_escapes_and_dotdot_are_refused(sb: Sandbox, root: Path) -> None:
    code, _ = run(sb, f"ln -s {root.parent}/keel.db out; ln -s /etc/passwd pw; ln -s .. up")
    assert code == 0  # links made inside resolve inside the sandbox only
    for path in ("out", "pw", "up/keel.db", "../keel.db", "/etc/passwd", "a/../../keel.db"):
        with pytest.raises(InvalidInput):
            sb.read(path)
    with pytest.raises(InvalidInput):
        sb.write("up/keel.db", "overwritten")
    code, out = run(sb, "ln /etc/passwd hard")
    assert code != 0, out  # a hard link across mounts: EXDEV


def test_writing_outside_the_workspace_fails(sb: Sandbox) -> None:
    for path in ("/usr/evil", "/etc/evil", "/evil", "/proc/evil"):
        code, _ = run(sb, f"echo x > {path}")
        assert code != 0, path
    assert not Path("/usr/evil").exists() and not Path("/etc/evil").exists()
    code, _ = run(sb, "echo x > /tmp/scratch && cat /tmp/scratch")
    assert code == 0  # the private /tmp


def test_fork_bomb_is_bounded(sb: Sandbox) -> None:
    _code, out = run(sb, "for i in $(seq 100); do sleep 5 & done 2>&1 | head -1; echo spawned")
    assert "fork" in out.lower() or "resource" in out.lower(), out


def test_memory_bomb_is_bounded(sb: Sandbox) -> None:
    code, out = run(sb, "python3 -c 'x = bytearray(1 << 30)'")
    assert code != 0 and "MemoryError" in out


def test_cpu_spin_is_killed(sb: Sandbox) -> None:
    result = asyncio.run(sb.run("python3 -c 'while True: pass'"))
    assert result.exit_code != 0  # SIGXCPU at cpu_seconds


def test_wall_time_kills_the_command_and_what_it_left(sb: Sandbox, root: Path) -> None:
    quick = Sandbox(sb.workspace, SandboxSettings(root, SandboxLimits(wall_seconds=1.0)))
    result = asyncio.run(quick.run("sleep 31.25 & sleep 31.5"))
    assert result.timed_out and result.exit_code != 0
    result = asyncio.run(sb.run("sleep 31.75 & echo started"))
    assert result.stdout == "started\n" and not result.timed_out
    # Both commands' leftovers die with their PID namespace (bounded wait for the kernel).
    assert wait_gone(("31.25", "31.5", "31.75"))


def wait_gone(args: tuple[str, ...]) -> bool:
    for _ in range(100):
        if not any(host_sleeps(arg) for arg in args):
            return True
        time.sleep(0.1)
    return False


def host_sleeps(arg: str) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[:2] == [b"sleep", arg.encode()]:
            return True
    return False


def test_disk_fill_is_stopped(sb: Sandbox) -> None:
    code, out = run(sb, "head -c 10000000 /dev/zero > big")
    assert code != 0 and "File size limit exceeded" in out
    assert (sb.workspace / "big").stat().st_size <= LIMITS.file_bytes
    code, out = run(sb, "head -c 100000000 /dev/zero > /tmp/big; wc -c < /tmp/big >&2")
    assert int(out.split()[-1]) <= LIMITS.file_bytes


def test_signals_and_ptrace_cannot_reach_the_host(sb: Sandbox) -> None:
    me = os.getpid()
    code, out = run(sb, f"kill -9 {me}; echo kill=$?")
    assert code == 0 and "kill=0" not in out, out  # the host's pid is not in the sandbox's ns
    probe = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"print('ptrace', libc.ptrace(16, {me}, 0, 0), ctypes.get_errno())\n"
    )
    sb.write("trace.py", probe)
    code, out = run(sb, "python3 trace.py")
    assert "ptrace -1" in out, out


def test_output_bomb_is_truncated(sb: Sandbox) -> None:
    result = asyncio.run(sb.run("yes | head -c 1000000"))
    assert result.truncated
    assert result.stdout.endswith("[keel: output truncated at 4096 bytes]\n")
    assert len(result.stdout) < LIMITS.output_bytes + 100


def test_twenty_commands_at_once_each_see_their_own_workspace(root: Path) -> None:
    # Twenty threads (one uid each as root; one shared uid otherwise): room for twenty here.
    settings = SandboxSettings(root, dataclasses.replace(LIMITS, processes=256))
    boxes = [for_thread(f"t{i}", settings) for i in range(20)]
    for i, box in enumerate(boxes):
        box.write("me.txt", str(i))

    async def all_at_once() -> list[str]:
        command = "cat me.txt; echo; ls /workspace | wc -l"
        results = await asyncio.gather(*(b.run(command) for b in boxes))
        return [r.stdout for r in results]

    assert asyncio.run(all_at_once()) == [f"{i}\n1\n" for i in range(20)]


def test_thread_ids_are_validated(settings: SandboxSettings) -> None:
    for bad in ("..", "../x", "a/b", "", ".hidden"):
        with pytest.raises(InvalidInput):
            for_thread(bad, settings)
