"""`keel db vacuum`: give the space retention freed back, or make it reusable.

SQLite: a file made before Keel turned on incremental auto-vacuum is converted (`VACUUM`
rewrites it, so it needs the file to itself: refused while a server holds it); then every free
page goes back to the file system. A converted file can be trimmed while the server runs (the
server itself keeps a slack of free pages for reuse). PostgreSQL: `VACUUM (ANALYZE)` on Keel's,
the checkpoints' and the store's tables; autovacuum does the same by itself (docs/retention.md).
"""

from __future__ import annotations

from typing import Any

from keel.retention.stats import display_name, human, open_existing
from keel.settings import Settings


async def vacuum_command(settings: Settings, args: Any) -> None:
    storage = await open_existing(settings)
    try:
        report = await storage.vacuum()
    finally:
        await storage.close()
    print(f"vacuumed {display_name(settings)}")
    for line in report.done:
        print(f"  {line}")
    print(f"  size on disk: {human(report.before_bytes)} -> {human(report.after_bytes)}")
