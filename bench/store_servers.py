"""The servers of the store benchmark (bench/store.py): Keel on a given database, and
`langgraph dev` whose store embeds with Keel's default model."""

from __future__ import annotations

import contextlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.contenders import (
    LANGGRAPH_DEV_PINS,
    ROOT,
    LangGraphDevServer,
    ensure_venv,
    write_graphs,
)

# what Keel's default embedder needs besides the standard library, installed beside
# langgraph dev at the versions Keel's environment has (numpy also turns on InMemoryStore's
# vectorised cosine, its best configuration)
EMBEDDER_DEPS = ("numpy", "tokenizers", "safetensors", "wordllama")


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
