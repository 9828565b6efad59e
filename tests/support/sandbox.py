"""A directory for sandbox workspaces in tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def traversable_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory under /tmp, mode 0711 (a sandbox's user, a thread's uid when the tests
    run as root, traverses it to its own workspace: docs/sandbox.md), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
