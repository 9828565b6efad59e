"""The servers of the store benchmark (bench/store.py): Keel on a given database, and
`langgraph dev` whose store embeds with Keel's default model."""

from __future__ import annotations

import contextlib
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.contenders import (
    LANGGRAPH_DEV_PINS,
    ROOT,
    LangGraphDevServer,
    Server,
    ensure_venv,
    write_graphs,
)
from tests.support.postgres import PgCluster
from tests.support.server import serve_command

# what Keel's default embedder needs besides the standard library, installed beside
# langgraph dev at the versions Keel's environment has (numpy also turns on InMemoryStore's
# vectorised cosine, its best configuration)
EMBEDDER_DEPS = ("numpy", "tokenizers", "safetensors", "wordllama")


class KeelStoreServer(Server):
    """`keel serve` on a given database (default store settings: Keel's embedded model)."""

    key = "keel"
    label = "Keel"

    def __init__(self, workdir: Path, database: str, postgres: PgCluster | None = None) -> None:
        super().__init__(workdir)
        self.database = database
        self.postgres = postgres

    def prepare(self) -> None:
        self.config = write_graphs(self.workdir, "keel.json")

    def command(self) -> list[str]:
        return serve_command(self.config, self.port, self.database)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KEEL_LOG_LEVEL": "warning", "PYTHONPATH": ""}

    def db_pids(self) -> list[int]:
        return self.postgres.pids() if self.postgres is not None else []


EMBED_PY = '''"""langgraph dev's embedding function: Keel's default model, from Keel's tree."""

import sys
from pathlib import Path

sys.path.append({root!r})

_embedder = None


async def embed(texts: list[str]) -> list[list[float]]:
    global _embedder
    if _embedder is None:
        from keel.embeddings import load_embedder
        from keel.settings import IndexSettings

        _embedder = load_embedder(IndexSettings(), Path(__file__).resolve().parent)
    vectors = await _embedder.embed(list(texts))
    return vectors.tolist()
'''


class LangGraphDevStoreServer(LangGraphDevServer):
    """`langgraph dev` whose store embeds with Keel's model (InMemoryStore, same dims/fields)."""

    key = "lgdev"
    label = "langgraph dev"

    def prepare(self) -> None:
        index = {"dims": 256, "embed": "./embed.py:embed", "fields": ["$"]}
        write_graphs(
            self.workdir,
            "langgraph.json",
            {"dependencies": ["."], "env": {}, "store": {"index": index}},
        )
        (self.workdir / "embed.py").write_text(EMBED_PY.format(root=str(ROOT)))

    @staticmethod
    def install(log: Any = print) -> Path:
        deps = []
        for name in EMBEDDER_DEPS:
            with contextlib.suppress(PackageNotFoundError):
                deps.append(f"{name}=={version(name)}")
        return ensure_venv("langgraph-dev-store", [*LANGGRAPH_DEV_PINS, *deps], log)
