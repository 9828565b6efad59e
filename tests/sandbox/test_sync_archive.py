"""Workspace snapshots (keel.sandbox.archive): a workspace packs and unpacks to the same tree,
the same files give the same bytes, and a crafted snapshot cannot write outside its target."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from keel.errors import InvalidInput
from keel.sandbox import archive


def crafted(*members: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member in members:
            data = b"x" * member.size
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = size
    return info


def test_a_workspace_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("print(1)\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o755)
    os.symlink("pkg/mod.py", src / "link")
    os.symlink("/etc/passwd", src / "out")  # points out: left out of the snapshot
    os.mkfifo(src / "pipe")  # not a file: left out
    data = archive.pack(src)
    assert archive.pack(src) == data  # the same files, the same bytes
    dst = tmp_path / "dst"
    dst.mkdir()
    archive.unpack(data, dst)
    assert sorted(os.listdir(dst)) == ["link", "pkg", "run.sh"]
    assert (dst / "link").read_text() == "print(1)\n"
    assert os.access(dst / "run.sh", os.X_OK)


@pytest.mark.parametrize(
    "member",
    [
        entry("/etc/evil", size=1),
        entry("../evil", size=1),
        entry("a/../../evil", size=1),
        entry("up", tarfile.SYMTYPE, "../../etc"),
        entry("abs", tarfile.SYMTYPE, "/etc/passwd"),
        entry("hard", tarfile.LNKTYPE, "/etc/passwd"),
        entry("dev", tarfile.CHRTYPE),
        entry("fifo", tarfile.FIFOTYPE),
    ],
    ids=lambda m: m.name,
)
def test_an_unsafe_snapshot_is_refused_whole(tmp_path: Path, member: tarfile.TarInfo) -> None:
    dst = tmp_path / "ws" / "dst"
    dst.mkdir(parents=True)
    with pytest.raises(InvalidInput):
        archive.unpack(crafted(entry("fine", size=1), member), dst)
    assert os.listdir(dst) == []  # refused before anything was written
    assert sorted(os.listdir(tmp_path / "ws")) == ["dst"]
