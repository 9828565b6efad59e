"""A workspace as a tar.gz and back: `pack` (regular files, directories and symlinks, no owners)
and `unpack`, which extracts only what stays inside the target: no absolute names, no `..`, no
hard links, no symlink pointing out, no devices or FIFOs."""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import tarfile
from pathlib import Path

from keel.errors import InvalidInput

# Fast enough for a workspace published after every command; tar.gz of text compresses well.
LEVEL = 1


def pack(workspace: Path) -> bytes:
    buf = io.BytesIO()
    # mtime=0: the same files give the same bytes (an unchanged workspace is not republished).
    gz = gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=LEVEL, mtime=0)
    with gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder, dirs, files in os.walk(workspace):
            dirs.sort()
            for name in [*dirs, *sorted(files)]:
                full = os.path.join(folder, name)
                info = tar.gettarinfo(full, os.path.relpath(full, workspace))
                if not (info.isfile() or info.isdir() or info.issym()) or _unsafe_link(info):
                    continue  # a FIFO, socket or symlink out: not part of the snapshot
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def unpack(archive: bytes, target: Path) -> None:
    """Extract `archive` into the empty directory `target`; InvalidInput on an unsafe member."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            _check(member)
        # The `data` filter refuses what `_check` refuses, and more (Python >= 3.11.4).
        tar.extractall(target, members=members, filter="data")


def _check(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\x00" in name:
        raise InvalidInput(f"unsafe name in a workspace snapshot: {name!r}")
    if not (member.isfile() or member.isdir() or member.issym()):
        raise InvalidInput(f"unsupported entry in a workspace snapshot: {name!r}")
    if _unsafe_link(member):
        raise InvalidInput(f"symlink out of the workspace in a snapshot: {name!r}")


def _unsafe_link(member: tarfile.TarInfo) -> bool:
    """A symlink that is absolute or climbs out of the workspace."""
    if not member.issym():
        return False
    link = member.linkname
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), link))
    return link.startswith("/") or resolved == ".." or resolved.startswith("../")
