"""Embedding models for the store's semantic search (`store.index.embed` in langgraph.json).

- none or `"keel:wordllama"`: Keel's embedded model, WordLlama "l2_supercat" static token
  vectors read from the files inside the `wordllama` wheel (no download, no torch, no import of
  `wordllama`); loaded on first use, once per process; the CPU work runs in a thread.
- `"provider:model"`: an OpenAI-compatible `POST /embeddings` (openai, ollama, vllm,
  openai-compatible); base URL and key from the environment.
- `"path.py:function"` / `"package.module:function"`: a sync or async function
  `(list[str]) -> list[list[float]]`, or a LangChain `Embeddings` instance.

Rows are float32 and L2-normalised (all-zero rows stay zero). A failure while embedding is an
`UpstreamError` (502) naming the model; a bad spec, a `ConfigError` from `load_embedder`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import httpx
import numpy as np
import numpy.typing as npt

from keel.errors import ConfigError, UpstreamError
from keel.settings import IndexSettings

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from tokenizers import Tokenizer

log = logging.getLogger("keel.embeddings")

Floats = npt.NDArray[np.float32]
DEFAULT = "keel:wordllama"
WORDLLAMA_DIMS = (64, 128, 256)  # Matryoshka: the first 64 or 128 of the 256 columns also work
MAX_TOKENS = 512  # a longer text is embedded from its first 512 tokens only
MAX_CHARS = 16 * MAX_TOKENS  # cut before tokenizing, so a huge text costs no more than ~3 ms
CHUNK = 128  # texts per tokenize+gather step: bounds the (tokens x dims) array gathered at once
BATCH = 256  # texts per request to an embeddings endpoint
IN_FLIGHT = 16  # requests at once from one endpoint embedder (per event loop); others wait
TIMEOUT = 30.0


class Embedder(Protocol):
    dims: int
    name: str  # for logs and error messages, e.g. "keel:wordllama-256"
    # Leading columns that rank on their own (a Matryoshka model): vector search may shortlist
    # large scans by them, then score the shortlist in full. None: always score in full.
    coarse_dims: int | None

    async def embed(self, texts: Sequence[str]) -> Floats:
        """(len(texts), dims) float32, every row L2-normalised (all-zero rows stay zero)."""
        ...


def load_embedder(index: IndexSettings, base_dir: Path) -> Embedder:
    """The embedder `index.embed` names. Cheap: models load on first use. ConfigError if bad."""
    spec = (index.embed or DEFAULT).strip()
    if spec == DEFAULT:
        return WordLlama(index.dims)
    prefix, _, model = spec.partition(":")
    if prefix in PROVIDERS:
        return _endpoint(prefix, model, index.dims)
    if prefix == "keel" or ":" not in spec:
        raise ConfigError(
            f"store.index.embed {spec!r}: expected {DEFAULT!r}, 'provider:model' or "
            "'path.py:function'"
        )
    return FunctionEmbedder(spec, index.dims, _resolve(spec, base_dir))


def _empty(dims: int) -> Floats:
    return np.zeros((0, dims), dtype=np.float32)


def _normalise(vectors: Floats) -> Floats:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


def _matrix(raw: Any, count: int, dims: int, name: str) -> Floats:
    """Vectors returned by a model, checked: `count` rows of `dims` finite numbers."""
    try:
        array = np.asarray(raw)
    except (TypeError, ValueError) as exc:
        raise UpstreamError(f"embedding model {name!r} returned malformed vectors: {exc}") from exc
    if array.ndim == 0 or len(array) != count:
        got = len(array) if array.ndim else "no list of"
        raise UpstreamError(f"embedding model {name!r} returned {got} vectors for {count} texts")
    if array.ndim != 2 or array.dtype.kind not in "iuf":
        raise UpstreamError(f"embedding model {name!r} returned vectors that are not number lists")
    if array.shape[1] != dims:
        raise UpstreamError(
            f"embedding model {name!r} returned {array.shape[1]}-dim vectors but "
            f"store.index.dims is {dims}"
        )
    if not np.isfinite(array).all():
        raise UpstreamError(f"embedding model {name!r} returned NaN or infinite values")
    return array.astype(np.float32)


# ---------------------------------------------------------------------------- keel:wordllama
class _Model(NamedTuple):
    tokenizer: Tokenizer
    table: Floats  # (vocabulary, dims) float32 token vectors


_LOCK = threading.Lock()
_MODELS: dict[int, _Model] = {}  # by dims: loaded once per process


def _wordllama_files() -> tuple[Path, Path]:
    # find_spec of a top-level package locates it without importing it: `import wordllama`
    # would reconfigure the root logger, and its loader would try to download the tokenizer.
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"{DEFAULT} (the default store.index.embed) needs the wordllama package: "
            "pip install wordllama==0.4.0.post1"
        )
    package = Path(spec.origin).parent
    files = (
        package / "weights" / "l2_supercat_256.safetensors",
        package / "tokenizers" / "l2_supercat_tokenizer_config.json",
    )
    for file in files:
        if not file.is_file():
            raise ConfigError(f"{DEFAULT}: {str(file)!r} is missing from the wordllama package")
    return files


def _wordllama_model(dims: int) -> _Model:
    """The tokenizer and the first `dims` columns of the token table, loaded once (threadsafe)."""
    found = _MODELS.get(dims)
    if found is not None:
        return found
    with _LOCK:
        if dims not in _MODELS:
            if 256 not in _MODELS:
                _MODELS[256] = _load_wordllama()
            full = _MODELS[256]
            table = np.ascontiguousarray(full.table[:, :dims])
            _MODELS[dims] = _Model(full.tokenizer, table)
        return _MODELS[dims]


def _load_wordllama() -> _Model:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    started = time.perf_counter()
    weights, tokenizer_file = _wordllama_files()
    table = load_file(weights)["embedding.weight"].astype(np.float32)  # stored as float16
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    elapsed = time.perf_counter() - started
    log.info("loaded %s %s in %.2f s", DEFAULT, table.shape, elapsed)
    return _Model(tokenizer, table)


def _sum_rows(table: Floats, ids: list[list[int]], out: Floats) -> None:
    """out[i] = the sum of the token vectors of ids[i] (rows of texts without tokens untouched)."""
    lengths = np.fromiter(map(len, ids), dtype=np.intp, count=len(ids))
    flat = itertools.chain.from_iterable(ids)
    tokens = np.fromiter(flat, dtype=np.intp, count=int(lengths.sum()))
    if tokens.size == 0:
        return
    nonempty = lengths > 0
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    out[nonempty] = np.add.reduceat(table[tokens], starts, axis=0)


class WordLlama:
    """Keel's embedded model: the normalised sum of a text's static token vectors."""

    coarse_dims: int | None = None  # set per instance: half the dims (Matryoshka-trained)

    def __init__(self, dims: int) -> None:
        if dims not in WORDLLAMA_DIMS:
            raise ConfigError(
                f"store.index.dims is {dims}, but Keel's embedded model ({DEFAULT}) has "
                f"{', '.join(map(str, WORDLLAMA_DIMS))} dims: use one of these, or set "
                "store.index.embed to another model"
            )
        _wordllama_files()  # fail at startup, not at the first put, if the files are missing
        self.dims = dims
        self.name = f"{DEFAULT}-{dims}"
        self.coarse_dims = dims // 2 if dims >= 128 else None

    async def embed(self, texts: Sequence[str]) -> Floats:
        if not texts:
            return _empty(self.dims)
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def embed_sync(self, texts: list[str]) -> Floats:
        """The CPU work of `embed` (blocks: call it in a thread)."""
        model = _wordllama_model(self.dims)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for start in range(0, len(texts), CHUNK):
            chunk = [text[:MAX_CHARS] for text in texts[start : start + CHUNK]]
            encodings = model.tokenizer.encode_batch_fast(chunk, add_special_tokens=False)
            ids = [encoding.ids[:MAX_TOKENS] for encoding in encodings]
            _sum_rows(model.table, ids, out[start : start + CHUNK])
        return _normalise(out)


# ---------------------------------------------------------------------------- provider:model
class Provider(NamedTuple):
    base_url_env: str
    default_base_url: str | None
    api_key_env: str | None


PROVIDERS = {
    "openai": Provider("OPENAI_BASE_URL", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "ollama": Provider("OLLAMA_BASE_URL", "http://localhost:11434/v1", None),
    "vllm": Provider("OPENAI_BASE_URL", None, "OPENAI_API_KEY"),
    "openai-compatible": Provider("OPENAI_BASE_URL", None, "OPENAI_API_KEY"),
}


def _env(name: str | None) -> str | None:
    return (os.environ.get(name) or None) if name else None


def _endpoint(provider: str, model: str, dims: int) -> Endpoint:
    name = f"{provider}:{model}"
    if not model:
        raise ConfigError(f"store.index.embed {name!r}: the model name is missing")
    settings = PROVIDERS[provider]
    base_url = (
        _env("KEEL_EMBEDDINGS_BASE_URL") or _env(settings.base_url_env) or settings.default_base_url
    )
    if base_url is None:
        raise ConfigError(
            f"store.index.embed {name!r} needs the endpoint's base URL: set "
            f"KEEL_EMBEDDINGS_BASE_URL or {settings.base_url_env} (e.g. http://localhost:8000/v1)"
        )
    base_url = base_url.rstrip("/")
    if provider == "ollama" and not base_url.endswith("/v1"):
        base_url += "/v1"  # OLLAMA_BASE_URL is often the server root; its OpenAI API is at /v1
    api_key = _env("KEEL_EMBEDDINGS_API_KEY") or _env(settings.api_key_env)
    if provider == "openai" and api_key is None and base_url == settings.default_base_url:
        raise ConfigError(
            f"store.index.embed {name!r} needs OPENAI_API_KEY (or KEEL_EMBEDDINGS_API_KEY)"
        )
    send_dims = provider == "openai" and model.startswith("text-embedding-3")
    return Endpoint(name, dims, model, f"{base_url}/embeddings", api_key, send_dims)


class Endpoint:
    """An OpenAI-compatible `POST /embeddings`, at most `BATCH` texts per request."""

    coarse_dims: int | None = None

    def __init__(
        self, name: str, dims: int, model: str, url: str, api_key: str | None, send_dims: bool
    ) -> None:
        self.name = name
        self.dims = dims
        self.model = model
        self.url = url
        self.send_dims = send_dims  # text-embedding-3-* models shorten their vectors on request
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # One TLS context for every call: httpx builds one per client otherwise (~40 ms, even
        # for http:// URLs), which would make each call that much slower.
        self._verify = httpx.create_ssl_context()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._gates = weakref.WeakKeyDictionary()

    async def embed(self, texts: Sequence[str]) -> Floats:
        if not texts:
            return _empty(self.dims)
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop) or self._gates.setdefault(loop, asyncio.Semaphore(IN_FLIGHT))
        # A client per call, not one shared: nothing outlives the call (or its event loop), and
        # the call's batches reuse one connection.
        async with (
            gate,
            httpx.AsyncClient(
                timeout=TIMEOUT, headers=self._headers, verify=self._verify
            ) as client,
        ):
            parts = [
                await self._post(client, texts[start : start + BATCH])
                for start in range(0, len(texts), BATCH)
            ]
        return _normalise(np.concatenate(parts))

    async def _post(self, client: httpx.AsyncClient, texts: Sequence[str]) -> Floats:
        body: dict[str, Any] = {"model": self.model, "input": list(texts)}
        if self.send_dims:
            body["dimensions"] = self.dims
        where = f"embedding model {self.name!r} at {self.url}"
        try:
            response = await client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            text = response.text[:300]
            raise UpstreamError(f"{where} answered HTTP {response.status_code}: {text}")
        try:
            data = sorted(response.json()["data"], key=lambda row: row["index"])
            vectors = [row["embedding"] for row in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{where} sent an unexpected response: {exc!r}") from exc
        return _matrix(vectors, len(texts), self.dims, self.name)


# ---------------------------------------------------------------------------- path.py:function
def _resolve(spec: str, base_dir: Path) -> Any:
    """The attribute `spec` ('file.py:attr' relative to base_dir, or 'package.module:attr')."""
    target, _, attr = spec.rpartition(":")
    bare = "." not in target and "/" not in target  # 'name:x' is more likely a provider
    if bare and (not attr.isidentifier() or importlib.util.find_spec(target) is None):
        raise _unknown_provider(spec)
    if not target or not attr.isidentifier():
        raise ConfigError(f"store.index.embed {spec!r}: expected 'path.py:function'")
    from keel.imports import load_attr

    return load_attr(spec, base_dir, f"store.index.embed {spec!r}")


def _unknown_provider(spec: str) -> ConfigError:
    return ConfigError(
        f"store.index.embed {spec!r}: unknown provider {spec.partition(':')[0]!r}; supported: "
        f"{', '.join(PROVIDERS)} ('provider:model'), or 'path.py:function' for any other model"
    )


class FunctionEmbedder:
    """A user's embedding function or LangChain `Embeddings` (sync code runs in a thread)."""

    coarse_dims: int | None = None

    def __init__(self, name: str, dims: int, obj: Any) -> None:
        from langchain_core.embeddings import Embeddings
        from langgraph.store.base.embed import ensure_embeddings

        if isinstance(obj, type) or not (isinstance(obj, Embeddings) or callable(obj)):
            what = f"class {obj.__name__}" if isinstance(obj, type) else type(obj).__name__
            raise ConfigError(
                f"store.index.embed {name!r} is a {what}: expected a function "
                "(list[str]) -> list[list[float]] or a LangChain Embeddings instance"
            )
        self.name = name
        self.dims = dims
        self._embeddings: Embeddings = ensure_embeddings(obj)  # wraps functions, sync or async

    async def embed(self, texts: Sequence[str]) -> Floats:
        if not texts:
            return _empty(self.dims)
        try:
            raw = await self._embeddings.aembed_documents(list(texts))
        except Exception as exc:
            raise UpstreamError(
                f"embedding function {self.name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        return _normalise(_matrix(raw, len(texts), self.dims, self.name))
