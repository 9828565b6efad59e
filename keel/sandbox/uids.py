"""The host uid a thread's commands run as when Keel runs as root: one per thread, derived from
the thread id, so `RLIMIT_NPROC` (counted per uid) bounds one thread's commands rather than all
sandboxes together. Inside the sandbox the uid is always 65534."""

from __future__ import annotations

import hashlib
import os

# 0x70000000 .. 0x70ffffff: above the ranges systemd hands out (system and regular users, dynamic
# users, containers up to 0x6fffffff), below 2**31 (no signedness surprises).
UID_BASE = 0x70000000
UID_COUNT = 1 << 24
NOBODY = 65534


def thread_uid(thread_id: str) -> int:
    """The host uid of `thread_id`'s commands: its own when Keel runs as root; otherwise Keel's
    uid (an unprivileged process cannot switch users; bwrap maps it to 65534 inside)."""
    if os.getuid() != 0:
        return os.getuid()
    digest = hashlib.sha256(thread_id.encode()).digest()
    return UID_BASE + int.from_bytes(digest[:4], "big") % UID_COUNT
