"""The store benchmark's corpus, queries and exact answers, built offline and deterministically.

Items are ~50-word windows of English prose found on this machine: docstrings and comments of
the Python standard library, then of the installed packages, then READMEs and other text files
under /usr/share/doc (not changelogs or licences), in that order, until there are enough distinct
windows (disjoint windows first; when they run out, windows at shifted offsets). Nothing is
downloaded. The corpus and the bench's own embeddings of it are cached under
`.cache/bench-store/`, keyed by a hash of how they were made.

Item `i` is `{"text": ...}` with key `m{i:06d}` in namespace `("memories", "user-{i % users}")`,
`users` = items / 100 (at most 1,000), so a user holds ~100 items. Queries are 8-10-word slices of
random items with a few words dropped (paraphrase-ish), plus free questions; each is searched over
every item (`("memories",)`) and within one user.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import re
import sys
import sysconfig
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.contenders import ROOT

CORPUS_VERSION = 2
WINDOW = 50
# KEEL_BENCH_CACHE moves it (the smoke test uses a temporary directory)
CACHE = Path(os.environ.get("KEEL_BENCH_CACHE") or ROOT / ".cache" / "bench-store")
SEED = 20261122
ROOT_NS = "memories"
DOC_DIR = Path("/usr/share/doc")
DOC_SUFFIXES = (".txt", ".md", ".rst", ".txt.gz", ".md.gz", ".rst.gz")
DOC_SKIP = ("copyright", "changelog", "changes", "news", "history", "authors", "license")
WORD = re.compile(r"^[A-Za-z][a-z'-]*[.,;:!?)]?$")

FREE_QUESTIONS = (
    "how do I read a file line by line",
    "convert a timestamp into a timezone aware datetime",
    "what happens when a thread is interrupted while holding a lock",
    "how to parse command line arguments with default values",
    "escape special characters in a regular expression",
    "send an email with an attachment over SMTP",
    "compress data with gzip before writing it to disk",
    "why does my socket connection time out",
    "serialize an object to JSON with custom types",
    "how are exceptions chained when raised inside an except block",
    "create a temporary directory that is removed afterwards",
    "run a subprocess and capture its output",
    "what is the difference between a list and a tuple",
    "iterate over the keys of a dictionary in sorted order",
    "how to cancel a pending asynchronous task",
    "decode bytes that are not valid UTF-8",
    "measure how long a function takes to run",
    "copy a directory tree recursively",
    "generate random numbers with a fixed seed",
    "how does garbage collection handle reference cycles",
    "parse an XML document and find all elements",
    "what encoding is used for file names on this platform",
    "how to make an HTTP request and read the response headers",
    "format a number with thousands separators",
    "lock a file so that two processes do not write at once",
    "store user preferences between sessions",
    "the user prefers short answers and dark mode",
    "remember that the meeting was moved to Thursday afternoon",
    "how to compare two floating point numbers safely",
    "read configuration values from an INI file",
    "what does the warning about a deprecated module mean",
    "log messages to a file with a rotating handler",
    "sort a list of records by two keys",
    "how to test code that depends on the current time",
    "calculate the checksum of a large file",
    "why is my program using so much memory",
    "open a database connection and run a query",
    "how to handle signals such as interrupt and terminate",
    "split a path into directory, name and extension",
    "wait for several tasks and return when the first finishes",
)


@dataclass
class Corpus:
    texts: list[str]
    users: int
    key: str  # the hash the cache file is named after
    sources: dict[str, int]  # windows taken from each source

    def __len__(self) -> int:
        return len(self.texts)

    @staticmethod
    def item_key(i: int) -> str:
        return f"m{i:06d}"

    def namespace(self, i: int) -> tuple[str, str]:
        return (ROOT_NS, self.user(i))

    def user(self, i: int) -> str:
        return f"user-{i % self.users}"

    def value(self, i: int) -> dict[str, Any]:
        return {"text": self.texts[i]}


@dataclass
class Query:
    text: str
    user: str  # the user searched in the "one user" scope
    source: int | None  # the item the query was sliced from


def users_for(items: int) -> int:
    return max(1, min(1000, items // 100))


# ---- corpus -------------------------------------------------------------------------------


def _python_text(path: Path) -> str:
    """Docstrings and comments of one Python file, in source order ('' when it does not parse)."""
    try:
        src = path.read_bytes()
        tree = ast.parse(src)
    except (SyntaxError, ValueError, OSError, RecursionError):
        return ""
    parts: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                line = node.body[0].lineno if node.body else 0
                parts.append((line, "\n".join(_prose_lines(doc))))
    with contextlib.suppress(tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        for tok in tokenize.tokenize(io.BytesIO(src).readline):
            if tok.type == tokenize.COMMENT:
                parts.append((tok.start[0], tok.string.lstrip("#!").strip()))
    parts.sort(key=lambda p: p[0])
    return "\n".join(text for _, text in parts)


def _prose_lines(doc: str) -> Iterator[str]:
    """A docstring without its doctest lines."""
    for line in doc.splitlines():
        stripped = line.strip()
        if not stripped.startswith((">>>", "...", "$ ", "::")):
            yield stripped


def _doc_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
    if b"\0" in raw[:4096]:
        return ""
    return raw.decode("utf-8", errors="replace")


def _sources() -> list[tuple[str, list[Path]]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    purelib = Path(sysconfig.get_paths()["purelib"])
    std_files = sorted(
        p for p in stdlib.rglob("*.py") if "site-packages" not in p.relative_to(stdlib).parts
    )
    doc_files: list[Path] = []
    if DOC_DIR.is_dir():
        doc_files = sorted(
            p
            for p in DOC_DIR.rglob("*")
            if p.is_file()
            and not any(word in p.name.lower() for word in DOC_SKIP)
            and (p.name.endswith(DOC_SUFFIXES) or p.name.lower().startswith("readme"))
        )
    pkg_files = sorted(purelib.rglob("*.py")) if purelib.is_dir() else []
    return [("stdlib", std_files), ("site-packages", pkg_files), ("usr-share-doc", doc_files)]


def _fingerprint(items: int, sources: list[tuple[str, list[Path]]]) -> str:
    digest = hashlib.sha256(f"{CORPUS_VERSION}|{items}|{WINDOW}|{SEED}|{sys.version}".encode())
    for name, files in sources:
        digest.update(name.encode())
        for path in files:
            with contextlib.suppress(OSError):
                digest.update(f"{path}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:20]


def _windows(words: list[str], offset: int) -> Iterator[str]:
    for start in range(offset, len(words) - WINDOW + 1, WINDOW):
        window = words[start : start + WINDOW]
        if sum(1 for w in window if WORD.match(w)) >= 0.6 * WINDOW:
            yield " ".join(window)


def _clean_words(text: str) -> list[str]:
    return [w for w in text.split() if len(w) <= 40 and w.isprintable()]


def build_corpus(items: int, log: Any = print) -> Corpus:
    """`items` distinct windows; cached."""
    sources = _sources()
    key = _fingerprint(items, sources)
    path = CACHE / f"corpus-{key}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return Corpus(data["texts"], users_for(items), key, data["sources"])
    log(f"store corpus: building {items:,} items from this machine's text (cached afterwards)")
    want = max(items + items // 5, items + 200)  # a little more than needed, then sampled
    streams: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    for name, files in sources:
        for file in files:
            text = _doc_text(file) if name == "usr-share-doc" else _python_text(file)
            words = _clean_words(text)
            if len(words) < WINDOW:
                continue
            streams.append((name, words))
            for window in _windows(words, 0):
                if window not in seen:
                    seen.add(window)
                    found.append((name, window))
            if len(found) >= want:
                break
        if len(found) >= want:
            break
    # not enough disjoint windows: shifted ones (overlapping the first by half, a quarter, ...)
    for offset in (25, 12, 37, 6, 31, 18, 43, 3, 28, 15, 40, 9, 34, 21, 46):
        if len(found) >= want:
            break
        for name, words in streams:
            for window in _windows(words, offset):
                if window not in seen:
                    seen.add(window)
                    found.append((name, window))
    if len(found) < items:
        raise RuntimeError(f"only {len(found):,} distinct text windows on this machine")
    random.Random(SEED).shuffle(found)
    chosen = found[:items]
    counts: dict[str, int] = {}
    for name, _ in chosen:
        counts[name] = counts.get(name, 0) + 1
    texts = [text for _, text in chosen]
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"texts": texts, "sources": counts}))
    tmp.replace(path)
    return Corpus(texts, users_for(items), key, counts)


# ---- queries ------------------------------------------------------------------------------


def make_queries(corpus: Corpus, count: int) -> list[Query]:
    """`count` queries: four fifths sliced from random items, a fifth free questions."""
    rng = random.Random(SEED + 1)
    free = min(len(FREE_QUESTIONS), count // 5)
    out: list[Query] = []
    for _ in range(count - free):
        i = rng.randrange(len(corpus))
        words = [w.strip(".,;:!?()\"'`") for w in corpus.texts[i].split()]
        words = [w for w in words if w]
        length = rng.randint(8, 10) + 2
        start = rng.randrange(max(1, len(words) - length))
        piece = words[start : start + length]
        for _ in range(2):  # drop two words: a paraphrase-ish slice of 8-10 words
            if len(piece) > 4:
                piece.pop(rng.randrange(len(piece)))
        out.append(Query(" ".join(piece).lower(), corpus.user(i), i))
    for text in FREE_QUESTIONS[:free]:
        out.append(Query(text, corpus.user(rng.randrange(len(corpus))), None))
    rng.shuffle(out)
    return out


# ---- embeddings and exact search ---------------------------------------------------------

Floats = npt.NDArray[np.float32]


def embedded_text(value: dict[str, Any]) -> str:
    """What Keel and LangGraph embed for the field path "$" (the whole value)."""
    from langgraph.store.base.embed import get_text_at_path

    texts = get_text_at_path(value, "$")
    return texts[0]


async def embed_corpus(corpus: Corpus, embedder: Any, log: Any = print) -> Floats:
    """The bench's own embeddings of every item, with the embedder Keel uses; cached by corpus and
    by a fingerprint of the model (its vector for a probe text)."""
    probe = np.asarray(await embedder.embed(["keel store benchmark probe"]), dtype=np.float32)
    model = hashlib.sha256(probe.tobytes()).hexdigest()[:12]
    path = CACHE / f"vectors-{corpus.key}-{model}.npy"
    cached = await asyncio.to_thread(_load_vectors, path, len(corpus))
    if cached is not None:
        return cached
    log(f"store corpus: embedding {len(corpus):,} items for the exact answers (cached afterwards)")
    texts = [embedded_text(corpus.value(i)) for i in range(len(corpus))]
    parts = []
    for start in range(0, len(texts), 512):
        parts.append(np.asarray(await embedder.embed(texts[start : start + 512]), np.float32))
    vectors = np.concatenate(parts) if parts else np.zeros((0, probe.shape[1]), np.float32)
    await asyncio.to_thread(_save_vectors, path, vectors)
    return vectors


def _load_vectors(path: Path, rows: int) -> Floats | None:
    if not path.exists():
        return None
    cached: Floats = np.load(path)
    return cached if cached.shape[0] == rows else None


def _save_vectors(path: Path, vectors: Floats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
    np.save(tmp, vectors)
    tmp.replace(path)


def exact_top(
    vectors: Floats,
    query_vectors: Floats,
    queries: Sequence[Query],
    corpus: Corpus,
    size: int,
    k: int = 10,
) -> dict[str, list[list[str]]]:
    """Exact top-k keys by float64 cosine over the first `size` items, per scope:
    {"all": [...per query], "user": [...]}."""
    x = vectors[:size].astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    norms[norms == 0] = 1.0
    x /= norms[:, None]
    q = query_vectors.astype(np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1), 1e-12)[:, None]
    scores = q @ x.T  # (queries, size)
    user_of = np.arange(size) % corpus.users
    out: dict[str, list[list[str]]] = {"all": [], "user": []}
    for qi, query in enumerate(queries):
        for scope in ("all", "user"):
            row = scores[qi].copy()
            if scope == "user":
                row[user_of != int(query.user.split("-")[1])] = -np.inf
            top = np.argsort(-row, kind="stable")[:k]
            out[scope].append([corpus.item_key(int(i)) for i in top if row[i] != -np.inf])
    return out


def recall(found: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], k: int = 10) -> float:
    """Mean over queries of |found top-k ∩ exact top-k| / min(k, |exact|)."""
    values = []
    for got, want in zip(found, exact, strict=True):
        if want:
            values.append(len(set(got[:k]) & set(want[:k])) / min(k, len(want)))
    return float(np.mean(values)) if values else 0.0
