"""Workspace snapshots (keel.sandbox.sync): one row per thread, its version bumped by each
publish through a compare-and-set."""

from __future__ import annotations

from keel.storage.queries.base import Queries, Row


class WorkspaceQueries(Queries):
    async def workspace_version(self, thread_id: str) -> int:
        """The version of the thread's last published snapshot; 0 when there is none."""
        row = await self.one("SELECT version FROM workspaces WHERE thread_id=?", [thread_id])
        return int(row["version"]) if row else 0

    async def get_workspace(self, thread_id: str) -> Row | None:
        """`version`, `bytes`, `archive` (tar.gz) and `updated_at` of the last snapshot."""
        row = await self.one(
            "SELECT version, bytes, archive, updated_at FROM workspaces WHERE thread_id=?",
            [thread_id],
        )
        if row is not None:
            row["archive"] = bytes(row["archive"])
        return row

    async def put_workspace(
        self, thread_id: str, expected: int, archive: bytes, size: int, now: str
    ) -> bool:
        """Store version `expected + 1` if the current one is still `expected` (0: none yet)
        and the thread exists; False, nothing written, otherwise."""
        if expected == 0:
            return (
                await self.run(
                    "INSERT INTO workspaces (thread_id, version, bytes, archive, updated_at) "
                    "SELECT ?, 1, ?, ?, ? WHERE EXISTS (SELECT 1 FROM threads WHERE thread_id=?) "
                    "ON CONFLICT (thread_id) DO NOTHING",
                    [thread_id, size, archive, now, thread_id],
                )
                == 1
            )
        changed = await self.run(
            "UPDATE workspaces SET version=version+1, bytes=?, archive=?, updated_at=? "
            "WHERE thread_id=? AND version=?",
            [size, archive, now, thread_id, expected],
        )
        return changed == 1
