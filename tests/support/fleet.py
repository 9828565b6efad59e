"""A fleet on PostgreSQL: API-only processes (`--no-workers`) and two `keel worker` processes
sharing one database (tests/e2e/test_scale_out.py, test_metrics_fleet.py, test_tracing_fleet.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langgraph_sdk.client import LangGraphClient

from tests.conftest import GRAPHS_CONFIG
from tests.support.server import KeelServer, KeelWorker


@dataclass
class Fleet:
    database: str
    apis: list[KeelServer]
    workers: list[KeelWorker]

    clients: list[LangGraphClient] | None = None

    def client(self, i: int) -> LangGraphClient:
        """An SDK client of API process i (closed by the `sdk` fixture)."""
        assert self.clients is not None, "use the sdk fixture"
        return self.clients[i]

    async def executor(self, run_id: str) -> str | None:
        """The worker id holding a running run, else None."""
        row = self.run_row(run_id)
        return str(row["worker_id"]) if row["status"] == "running" else None

    def worker_of(self, worker_id: str) -> KeelWorker:
        return next(w for w in self.workers if f":{w.pid}:" in worker_id)

    def run_row(self, run_id: str) -> dict[str, Any]:
        with psycopg.connect(self.database) as conn:
            cur = conn.execute(
                "SELECT status, attempt, worker_id FROM runs WHERE run_id=%s", [run_id]
            )
            row = cur.fetchone()
        assert row is not None
        return {"status": row[0], "attempt": row[1], "worker_id": row[2]}


def start_fleet(database: str, workdir: Path, env: dict[str, str], apis: int = 2) -> Fleet:
    """`apis` API-only processes and two `keel worker` processes on `database`."""
    servers = [
        KeelServer(
            GRAPHS_CONFIG,
            workdir / f"api{i}",
            database=database,
            env=env,
            extra_args=["--no-workers"],
        )
        for i in range(apis)
    ]
    workers = [KeelWorker(GRAPHS_CONFIG, workdir / f"w{i}", database, env=env) for i in range(2)]
    for api in servers:
        api.start()
    for worker in workers:
        worker.start()
    return Fleet(database, servers, workers)


def stop_fleet(fleet: Fleet) -> None:
    for api in fleet.apis:
        api.stop()
    for worker in fleet.workers:
        worker.stop()
