"""One sandboxed command: the bwrap argv (namespaces, read-only system, the workspace at
/workspace, the seccomp filter), rlimits and the thread's uid set in the child before exec, wall
time enforced by killing the process group, stdout/stderr kept up to a byte cap."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import platform
import resource
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from keel.errors import SandboxUnavailable
from keel.sandbox import network, seccomp
from keel.sandbox.uids import NOBODY, thread_uid
from keel.settings.sandbox import AllowEntry, SandboxLimits

WORKSPACE = "/workspace"
# Inside the namespace commands run as nobody; outside (Keel as root) as the thread's uid.
SANDBOX_UID = NOBODY
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
ETC_FILES = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
             "/etc/localtime", "/etc/ssl", "/etc/ca-certificates")  # fmt: skip
TMP_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    truncated: bool
    # Killed because the workspace went over `workspace_bytes` (keel.sandbox.quota).
    quota_exceeded: bool = False


def marker(limit: int) -> bytes:
    return f"\n[keel: output truncated at {limit} bytes]\n".encode()


def bwrap_path() -> str:
    """The bwrap binary, or SandboxUnavailable saying why it cannot be used."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the sandbox needs Linux (bubblewrap); this is {sys.platform}")
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable("the sandbox needs bubblewrap (Debian: apt install bubblewrap)")
    if platform.machine() not in seccomp.ARCHES:
        raise SandboxUnavailable(
            f"the sandbox's seccomp filter knows x86_64 and aarch64, not {platform.machine()}"
        )
    return path


def _system_binds() -> list[str]:
    argv: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    return argv


def bwrap_argv(
    bwrap: str,
    workspace: Path,
    cmd: list[str],
    *,
    seccomp_fd: int | None = None,
    proxy_dir: str | None = None,
) -> list[str]:
    """Every namespace unshared (network included), no capabilities, no host environment;
    `seccomp_fd`: a descriptor (inherited by bwrap) holding the filter (seccomp.filter_fd());
    `proxy_dir`: the allow-list proxy's socket directory (network.proxy)."""
    filtered = [] if seccomp_fd is None else ["--seccomp", str(seccomp_fd)]
    proxy_bind: list[str] = []
    if proxy_dir is not None:
        proxy_bind = ["--ro-bind", proxy_dir, network.SOCKET_DIR]
        filtered += network.proxy_env()
        cmd = network.bridged(cmd)
    return [
        bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        *_system_binds(),
        "--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
        "--bind", str(workspace), WORKSPACE, "--chdir", WORKSPACE, *proxy_bind,
        "--remount-ro", "/",
        "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "HOME", WORKSPACE, "--setenv", "LANG", "C.UTF-8",
        *filtered, "--", *cmd,
    ]  # fmt: skip


def _preexec(limits: SandboxLimits, uid: int = SANDBOX_UID) -> Callable[[], None]:
    """Runs in the forked child before exec: rlimits, and root drops to `uid` (the thread's) so
    the kernel counts its processes and files as that unprivileged user's."""

    def setup() -> None:
        cpu = limits.cpu_seconds
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return setup


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes; the rest is drained and dropped so the command never blocks."""
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if len(chunk) > room:
            truncated = True
        kept += chunk[: max(room, 0)]
    return (bytes(kept) + marker(limit) if truncated else bytes(kept)), truncated


def _kill_group(pid: int) -> None:
    """bwrap and its sandbox's init (the sandboxed command is in a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


async def _spawn(
    workspace: Path, cmd: list[str], limits: SandboxLimits, proxy_dir: str | None = None
) -> asyncio.subprocess.Process:
    """bwrap started as the workspace's thread uid, the seccomp filter on a pipe it reads."""
    bwrap = bwrap_path()
    fd = seccomp.filter_fd()
    try:
        return await asyncio.create_subprocess_exec(
            *bwrap_argv(bwrap, workspace, cmd, seccomp_fd=fd, proxy_dir=proxy_dir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_preexec(limits, thread_uid(workspace.name)),
            pass_fds=(fd,),
            env={},
        )
    finally:
        os.close(fd)


async def run(
    workspace: Path,
    cmd: list[str],
    limits: SandboxLimits,
    *,
    allow: tuple[AllowEntry, ...] | None = None,
    watch: Callable[[Callable[[], None]], Awaitable[bool]] | None = None,
) -> Result:
    """`cmd` in a fresh sandbox over `workspace` (`<root>/<thread_id>`, run as that thread's uid
    when Keel is root); killed (the whole group) at the wall limit, or when `watch` (given the
    kill: keel.sandbox.quota) says so. `allow`: the network allow-list (None: no network at
    all; else a proxy for this command, network.py)."""
    if allow is None:
        return await _supervise(await _spawn(workspace, cmd, limits), limits, watch)
    async with network.proxy(allow, thread_uid(workspace.name)) as proxy_dir:
        proc = await _spawn(workspace, cmd, limits, proxy_dir)
        return await _supervise(proc, limits, watch)


async def _supervise(
    proc: asyncio.subprocess.Process,
    limits: SandboxLimits,
    watch: Callable[[Callable[[], None]], Awaitable[bool]] | None = None,
) -> Result:
    """Output read up to the cap, the wall limit and `watch` enforced, the exit awaited."""
    assert proc.stdout is not None and proc.stderr is not None
    reads = asyncio.gather(
        _read_capped(proc.stdout, limits.output_bytes),
        _read_capped(proc.stderr, limits.output_bytes),
    )
    timed_out = False
    watching = asyncio.ensure_future(watch(lambda: _kill_group(proc.pid)) if watch else _never())
    try:
        (out, out_cut), (err, err_cut) = await asyncio.wait_for(
            asyncio.shield(reads), limits.wall_seconds
        )
    except TimeoutError:
        # bwrap dies; --die-with-parent takes the sandbox's init, and with it the PID namespace.
        timed_out = True
        _kill_group(proc.pid)
        (out, out_cut), (err, err_cut) = await reads
    except BaseException:
        _kill_group(proc.pid)  # cancelled: nothing is left running
        raise
    finally:
        watching.cancel()
    code = await proc.wait()
    over = watching.done() and not watching.cancelled() and watching.result()
    return Result(
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace") + (_over_marker(limits) if over else ""),
        exit_code=code,
        timed_out=timed_out,
        truncated=out_cut or err_cut,
        quota_exceeded=over,
    )


async def _never() -> bool:
    return False


def _over_marker(limits: SandboxLimits) -> str:
    quota = limits.workspace_bytes
    return f"\n[keel: killed: the workspace went over its quota of {quota} bytes]\n"
