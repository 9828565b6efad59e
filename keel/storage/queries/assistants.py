"""Assistants and their versions."""

from __future__ import annotations

from typing import Any

from keel.storage.queries.base import ASSISTANT_COLS, Queries, Row, j


class AssistantQueries(Queries):
    @staticmethod
    def _assistant_body(a: Row) -> list[Any]:
        """graph_id, config, context, metadata, name, description, in column order."""
        return [
            a["graph_id"],
            j(a["config"]),
            j(a["context"]),
            j(a["metadata"]),
            a["name"],
            a["description"],
        ]

    async def insert_assistant(self, a: Row) -> None:
        await self.run(
            f"INSERT INTO assistants ({ASSISTANT_COLS}, org) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                a["assistant_id"],
                *self._assistant_body(a),
                a["version"],
                a["created_at"],
                a["updated_at"],
                a.get("org"),
            ],
        )
        await self.insert_assistant_version(a)

    async def insert_assistant_version(self, a: Row) -> None:
        await self.run(
            "INSERT INTO assistant_versions (assistant_id, graph_id, config, context, metadata, "
            "name, description, version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [a["assistant_id"], *self._assistant_body(a), a["version"], a["updated_at"]],
        )

    async def update_assistant(self, a: Row) -> None:
        await self.run(
            "UPDATE assistants SET graph_id=?, config=?, context=?, metadata=?, name=?, "
            "description=?, version=?, updated_at=? WHERE assistant_id=?",
            [*self._assistant_body(a), a["version"], a["updated_at"], a["assistant_id"]],
        )

    async def get_assistant(self, assistant_id: str) -> Row | None:
        """The assistant, with its `org` (auth scopes read it)."""
        return await self.one(
            f"SELECT {ASSISTANT_COLS}, org FROM assistants WHERE assistant_id=?", [assistant_id]
        )

    async def get_assistant_in(
        self, assistant_id: str, where: str, params: list[Any]
    ) -> Row | None:
        """The assistant (with its `org`) if it satisfies `where` (an auth scope's SQL)."""
        return await self.one(
            f"SELECT {ASSISTANT_COLS}, org FROM assistants WHERE assistant_id=? AND {where}",
            [assistant_id, *params],
        )

    async def delete_assistant(self, assistant_id: str) -> int:
        await self.run("DELETE FROM assistant_versions WHERE assistant_id=?", [assistant_id])
        await self.run("DELETE FROM crons WHERE assistant_id=?", [assistant_id])
        return await self.run("DELETE FROM assistants WHERE assistant_id=?", [assistant_id])

    async def max_assistant_version(self, assistant_id: str) -> int:
        row = await self.one(
            "SELECT MAX(version) AS v FROM assistant_versions WHERE assistant_id=?",
            [assistant_id],
        )
        return int(row["v"]) if row and row["v"] is not None else 0

    async def get_assistant_version(self, assistant_id: str, version: int) -> Row | None:
        return await self.one(
            "SELECT * FROM assistant_versions WHERE assistant_id=? AND version=?",
            [assistant_id, version],
        )

    async def search_assistants(
        self, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT {ASSISTANT_COLS} FROM assistants WHERE {where} ORDER BY {order} "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )

    async def count(self, table: str, where: str, params: list[Any]) -> int:
        row = await self.one(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params)
        return int(row["n"]) if row else 0

    async def list_assistant_versions(
        self, where: str, params: list[Any], limit: int, offset: int
    ) -> list[Row]:
        return await self.all(
            f"SELECT * FROM assistant_versions WHERE {where} ORDER BY version DESC "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
