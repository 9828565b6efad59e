"""keel.embeddings: the embedded default model, OpenAI-compatible endpoints (a real HTTP server
on 127.0.0.1), and user functions loaded from 'path.py:function' specs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.embeddings import IN_FLIGHT, Embedder, load_embedder
from keel.errors import ConfigError, UpstreamError
from keel.settings import IndexSettings

ROOT = Path(__file__).resolve().parents[2]


def embedder(embed: str | None = None, dims: int = 256, base_dir: Path = ROOT) -> Embedder:
    return load_embedder(IndexSettings(dims=dims, embed=embed), base_dir)


def assert_normalised(vectors: np.ndarray[Any, Any], rows: int, dims: int) -> None:
    assert vectors.shape == (rows, dims)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------- keel:wordllama
OFFLINE = """
import asyncio, json, logging, socket, sys
from pathlib import Path

attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network access attempted")

socket.getaddrinfo = refuse
socket.create_connection = refuse
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
root = logging.getLogger()
before = (root.level, list(root.handlers))

from keel.embeddings import load_embedder
from keel.settings import IndexSettings

imported = (root.level, list(root.handlers)) == before
embedder = load_embedder(IndexSettings(), Path("."))
vectors = asyncio.run(embedder.embed(["durable agents", "semantic memory"]))
print(json.dumps({
    "name": embedder.name,
    "shape": list(vectors.shape),
    "norms": [float(n) for n in (vectors ** 2).sum(axis=1)],
    "attempts": attempts,
    "root_logger_unchanged": imported and (root.level, list(root.handlers)) == before,
    "wordllama_imported": "wordllama" in sys.modules,
}))
"""


def _no_network_prefix() -> list[str]:
    """`unshare -n` (a private network namespace, no interfaces up) where this user may."""
    if shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return ["unshare", "-n"] if probe.returncode == 0 else []


def test_default_model_loads_without_network_or_logging_changes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_HOME")}
    env["HF_HOME"] = str(tmp_path / "empty-hf-home")  # no cached download to fall back on
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [*_no_network_prefix(), sys.executable, "-c", OFFLINE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["name"] == "keel:wordllama-256"
    assert report["shape"] == [2, 256]
    assert report["norms"] == pytest.approx([1.0, 1.0], rel=1e-5)
    assert report["attempts"] == []
    assert report["root_logger_unchanged"]
    assert not report["wordllama_imported"]


async def test_default_model_ranks_related_texts_higher() -> None:
    model = embedder()
    assert (model.name, model.dims) == ("keel:wordllama-256", 256)
    vectors = await model.embed(
        [
            "How do I reset my password?",
            "Steps to reset a forgotten account password",
            "The cat slept on the warm windowsill all afternoon",
            "My favourite food is pizza with mushrooms",
            "I love eating mushroom pizza",
        ]
    )
    assert_normalised(vectors, 5, 256)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2
    assert similarity[3, 4] > similarity[3, 2] + 0.2
    assert similarity[3, 4] > similarity[0, 4] + 0.2


async def test_default_model_smaller_dims_are_a_prefix() -> None:
    texts = ["long-term memory for agents", "a thread's checkpoints"]
    full = await embedder(dims=256).embed(texts)
    for dims in (64, 128):
        model = embedder(dims=dims)
        assert model.name == f"keel:wordllama-{dims}"
        short = await model.embed(texts)
        assert_normalised(short, 2, dims)
        prefix = full[:, :dims] / np.linalg.norm(full[:, :dims], axis=1, keepdims=True)
        np.testing.assert_allclose(short, prefix, atol=1e-5)


def test_default_model_refuses_other_dims() -> None:
    with pytest.raises(ConfigError, match=r"store.index.dims is 300.*64, 128, 256"):
        embedder(dims=300)
    with pytest.raises(ConfigError, match="keel:other"):
        embedder("keel:other")
    assert embedder("keel:wordllama").name == "keel:wordllama-256"


async def test_default_model_edge_cases() -> None:
    model = embedder()
    empty = await model.embed([])
    assert empty.shape == (0, 256) and empty.dtype == np.float32
    vectors = await model.embed(["", "memory", ""])
    assert not vectors[0].any() and not vectors[2].any()  # no tokens: an all-zero row
    assert_normalised(vectors[1:2], 1, 256)
    # Only the first 512 tokens of a text count.
    head = "apple " * 600
    same = await model.embed([head, head + "zebra crossing " * 50])
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)


async def test_default_model_concurrent_calls_match_one_batch() -> None:
    model = embedder(dims=128)
    texts = [f"note {i}: the user prefers {i % 7} cups of tea" for i in range(300)]
    batch = await model.embed(texts)
    singles = await asyncio.gather(*(model.embed([text]) for text in texts))
    np.testing.assert_allclose(np.concatenate(singles), batch, atol=1e-6)


# ---------------------------------------------------------------------------- provider:model
def hash_vector(text: str, dims: int) -> list[float]:
    return [b - 127.5 for b in hashlib.shake_256(text.encode()).digest(dims)]


class EmbeddingServer(ThreadingHTTPServer):
    """POST /v1/embeddings: deterministic vectors, data in reverse order; records requests."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, dims: int) -> None:
        super().__init__(("127.0.0.1", 0), EmbeddingHandler)
        self.dims = dims
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.released = threading.Event()  # "slow" requests no longer wait for company

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class EmbeddingHandler(BaseHTTPRequestHandler):
    server: EmbeddingServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization")
        self.server.requests.append({"path": self.path, "auth": auth, "body": body})
        if self.path != "/v1/embeddings":
            return self._send(404, {"error": "not found"})
        if body["model"] == "broken":
            return self._send(500, {"error": "the model crashed"})
        if body["model"] == "slow":
            with self.server.lock:
                self.server.in_flight += 1
                self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
                if self.server.in_flight > 1:
                    self.server.released.set()
            # The first request waits for a second one (at most 10 s, once), so a client that
            # sends requests concurrently is seen doing so however slow the machine is.
            self.server.released.wait(10)
            self.server.released.set()
            time.sleep(0.02)
            with self.server.lock:
                self.server.in_flight -= 1
        dims = 1536 if body["model"] == "wide" else body.get("dimensions", self.server.dims)
        data = [
            {"object": "embedding", "index": i, "embedding": hash_vector(text, dims)}
            for i, text in enumerate(body["input"])
        ]
        self._send(200, {"object": "list", "data": data[::-1], "model": body["model"]})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


ENV = (
    "KEEL_EMBEDDINGS_BASE_URL",
    "KEEL_EMBEDDINGS_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OLLAMA_BASE_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddingServer]:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    httpd = EmbeddingServer(dims=16)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


async def test_openai_batches_authenticates_and_keeps_order(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = embedder("openai:text-embedding-3-small", dims=16)
    assert model.name == "openai:text-embedding-3-small"
    texts = [f"memory {i}" for i in range(600)]
    vectors = await model.embed(texts)
    assert_normalised(vectors, 600, 16)
    expected = np.array([hash_vector(t, 16) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert [len(r["body"]["input"]) for r in server.requests] == [256, 256, 88]
    assert {r["path"] for r in server.requests} == {"/v1/embeddings"}
    assert {r["auth"] for r in server.requests} == {"Bearer sk-test"}
    assert {r["body"]["model"] for r in server.requests} == {"text-embedding-3-small"}
    assert {r["body"]["dimensions"] for r in server.requests} == {16}


async def test_ollama_and_overrides(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", server.url)  # the server root: /v1 is added
    vectors = await embedder("ollama:nomic-embed-text:latest", dims=16).embed(["a", "b"])
    assert_normalised(vectors, 2, 16)
    request = server.requests[-1]
    assert (request["path"], request["auth"]) == ("/v1/embeddings", None)
    assert request["body"] == {"model": "nomic-embed-text:latest", "input": ["a", "b"]}

    with pytest.raises(ConfigError, match="KEEL_EMBEDDINGS_BASE_URL or OPENAI_BASE_URL"):
        embedder("vllm:BAAI/bge-m3", dims=16)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("KEEL_EMBEDDINGS_BASE_URL", f"{server.url}/v1")
    monkeypatch.setenv("KEEL_EMBEDDINGS_API_KEY", "sk-keel")
    for spec in ("vllm:BAAI/bge-m3", "openai-compatible:BAAI/bge-m3"):
        assert (await embedder(spec, dims=16).embed(["c"])).shape == (1, 16)
        request = server.requests[-1]
        assert request["auth"] == "Bearer sk-keel"
        assert request["body"] == {"model": "BAAI/bge-m3", "input": ["c"]}


async def test_endpoint_failures_are_upstream_errors(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_EMBEDDINGS_BASE_URL", f"{server.url}/v1")
    with pytest.raises(UpstreamError, match=r"1536-dim vectors but store.index.dims is 16") as exc:
        await embedder("openai-compatible:wide", dims=16).embed(["x"])
    assert exc.value.status_code == 502
    with pytest.raises(UpstreamError, match=r"'openai-compatible:broken'.*HTTP 500.*crashed"):
        await embedder("openai-compatible:broken", dims=16).embed(["x"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("KEEL_EMBEDDINGS_BASE_URL", f"http://127.0.0.1:{closed}/v1")
    with pytest.raises(UpstreamError, match=r"'openai-compatible:m' at .*ConnectError"):
        await embedder("openai-compatible:m", dims=16).embed(["x"])
    assert (await embedder("openai-compatible:m", dims=16).embed([])).shape == (0, 16)


async def test_concurrent_calls_are_bounded(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_EMBEDDINGS_BASE_URL", f"{server.url}/v1")
    model = embedder("openai-compatible:slow", dims=16)
    texts = [f"text {i}" for i in range(60)]
    vectors = await asyncio.gather(*(model.embed([text]) for text in texts))
    np.testing.assert_allclose(np.concatenate(vectors), await model.embed(texts), atol=1e-6)
    assert 1 < server.max_in_flight <= IN_FLIGHT


def test_provider_config_errors(server: EmbeddingServer) -> None:
    with pytest.raises(ConfigError, match="needs OPENAI_API_KEY"):
        embedder("openai:text-embedding-3-small", dims=16)
    with pytest.raises(ConfigError, match=r"unknown provider 'cohere'.*openai, ollama, vllm"):
        embedder("cohere:embed-english-v3.0", dims=16)
    with pytest.raises(ConfigError, match="unknown provider 'nosuchthing'"):
        embedder("nosuchthing:embed", dims=16)
    with pytest.raises(ConfigError, match="model name is missing"):
        embedder("ollama:", dims=16)


# ---------------------------------------------------------------------------- path.py:function
FUNCTIONS = """
import threading

from langchain_core.embeddings import Embeddings

threads = []


def vector(text):
    return [float(len(text)), float(text.count("a")), 1.0, 0.0]


def embed(texts):
    threads.append(threading.get_ident())
    return [vector(t) for t in texts]


async def aembed(texts):
    threads.append(threading.get_ident())
    return [vector(t) for t in texts]


def wrong(texts):
    return [[1.0, 2.0] for t in texts]


def too_few(texts):
    return [vector(t) for t in texts[1:]]


def strings(texts):
    return [["1", "2", "3", "4"] for t in texts]


def failing(texts):
    raise RuntimeError("model exploded")


class Words(Embeddings):
    def embed_documents(self, texts):
        return embed(texts)

    def embed_query(self, text):
        return vector(text)


words = Words()
number = 42
"""


@pytest.fixture
def functions(tmp_path: Path) -> Path:
    (tmp_path / "embedders").mkdir()
    (tmp_path / "embedders" / "functions.py").write_text(textwrap.dedent(FUNCTIONS))
    return tmp_path


def expected_vectors(texts: list[str]) -> np.ndarray[Any, Any]:
    rows = np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts], dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


async def test_functions_sync_async_and_langchain(functions: Path) -> None:
    texts = ["banana", "kiwi"]
    loop_thread = threading.get_ident()
    for attr in ("embed", "aembed", "words"):
        model = embedder(f"embedders/functions.py:{attr}", dims=4, base_dir=functions)
        assert model.name == f"embedders/functions.py:{attr}"
        np.testing.assert_allclose(await model.embed(texts), expected_vectors(texts), atol=1e-6)
    module = sys.modules[next(n for n, m in sys.modules.items() if _is(m, functions))]
    sync_thread, async_thread, langchain_thread = module.threads
    assert sync_thread != loop_thread and langchain_thread != loop_thread  # run in a thread
    assert async_thread == loop_thread


def _is(module: Any, base_dir: Path) -> bool:
    return getattr(module, "__file__", None) == str(
        (base_dir / "embedders" / "functions.py").resolve()
    )


async def test_functions_from_a_package(functions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = f"keel_test_embedders_{abs(hash(functions))}"
    (functions / "embedders").rename(functions / package)
    (functions / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(functions))
    model = embedder(f"{package}.functions:aembed", dims=4)
    np.testing.assert_allclose(await model.embed(["a"]), expected_vectors(["a"]), atol=1e-6)


async def test_function_failures_are_upstream_errors(functions: Path) -> None:
    def load(attr: str) -> Embedder:
        return embedder(f"embedders/functions.py:{attr}", dims=4, base_dir=functions)

    cases = {
        "failing": "'embedders/functions.py:failing' raised RuntimeError: model exploded",
        "wrong": "returned 2-dim vectors but store.index.dims is 4",
        "too_few": "returned 1 vectors for 2 texts",
        "strings": "not number lists",
    }
    for attr, message in cases.items():
        with pytest.raises(UpstreamError, match=message):
            await load(attr).embed(["one", "two"])
    assert (await load("failing").embed([])).shape == (0, 4)


def test_function_config_errors(functions: Path) -> None:
    cases = {
        "embedders/missing.py:embed": "file .*missing.py' not found",
        "embedders/functions.py:nothing": "has no 'nothing'",
        "embedders/functions.py:Words": "is a class Words: expected a function",
        "embedders/functions.py:number": "is a int: expected a function",
        "no_such_package.module:embed": "No module named 'no_such_package'",
        "embedders/functions.py": "expected",
    }
    for spec, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            embedder(spec, dims=4, base_dir=functions)
