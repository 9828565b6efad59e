"""`VectorIndex`: a process's in-memory copy of the store's vectors, scanned with numpy.

A scan is a matrix-vector product (float32, rows L2-normalised, so the product is the cosine
similarity) and a partial sort: ~3.5 ms at 100,000 x 256 here, exact. For a Matryoshka model a
scan of many rows first ranks by the leading columns and scores a shortlist in full (~2.5 ms);
approximate indexes (HNSW in sqlite-vec or pgvector) were slower or lost recall at this size
(see docs/memory.md). The database stays the source of truth: the index follows it through
`store_clock` (see `keel/store.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

ItemKey = tuple[str, str]
COARSE_MIN_ROWS = 20_000  # smaller scans are exact
COARSE_POOL = 1_000  # rows scored exactly after the first pass (at least 20 per result)
Floats = npt.NDArray[np.float32]


class VectorIndex:
    """Vectors of store items (several per item: one per embedded field), by namespace."""

    def __init__(self, dims: int, coarse_dims: int | None = None) -> None:
        self.dims = dims
        # Columns [0, split) and [split, dims) are kept apart, so that a Matryoshka model's
        # leading columns can rank a large scan first (a quarter to half of the memory read).
        self.split = coarse_dims if coarse_dims and coarse_dims < dims else dims
        self.clear()

    def clear(self) -> None:
        self.seq = 0  # the store_clock sequence this index has caught up to
        self.loaded = False
        self._head: Floats = np.zeros((1024, self.split), dtype=np.float32)
        self._tail: Floats = np.zeros((1024, self.dims - self.split), dtype=np.float32)
        self._size = 0
        self._alive = np.zeros(1024, dtype=bool)
        self._ns = np.zeros(1024, dtype=np.int32)  # namespace id per row
        self._item_of_row: list[ItemKey] = []
        self._rows: dict[ItemKey, list[tuple[int, int]]] = {}  # item -> [(row, seq)]
        self._ns_ids: dict[str, int] = {}
        self._ns_names: list[str] = []
        self._dead = 0
        self._prefixes: dict[str, npt.NDArray[np.bool_]] = {}  # prefix -> namespace ids under it

    def __len__(self) -> int:
        return len(self._rows)

    def add_many(self, items: list[tuple[ItemKey, int]], vectors: Floats) -> None:
        """Append one row per (item, seq) with the matching row of `vectors`."""
        if vectors.shape != (len(items), self.dims):
            raise ValueError(f"vectors of shape {vectors.shape}, index has {self.dims} dims")
        start = self._size
        if start + len(items) > len(self._head):
            self._grow(start + len(items))
        self._head[start : start + len(items)] = vectors[:, : self.split]
        self._tail[start : start + len(items)] = vectors[:, self.split :]
        self._alive[start : start + len(items)] = True
        ids, rows = self._ns_ids, self._rows
        namespaces: list[int] = []
        for row, (item, seq) in enumerate(items, start):
            ns = ids.get(item[0])
            if ns is None:
                ns = ids[item[0]] = len(self._ns_names)
                self._ns_names.append(item[0])
            namespaces.append(ns)
            rows.setdefault(item, []).append((row, seq))
        self._ns[start : start + len(items)] = namespaces
        self._item_of_row.extend(item for item, _ in items)
        self._size += len(items)

    def remove(self, item: ItemKey, before_seq: int) -> None:
        """Forget the item's vectors written before `before_seq` (a later write's stay)."""
        rows = self._rows.get(item)
        if not rows:
            return
        keep = [(r, s) for r, s in rows if s >= before_seq]
        for r, s in rows:
            if s < before_seq:
                self._alive[r] = False
                self._dead += 1
        if keep:
            self._rows[item] = keep
        else:
            del self._rows[item]
        if self._dead > 1024 and self._dead > self._size // 4:
            self._compact()

    def search(
        self, query: Floats, prefix: str, want: int, skip: int = 0
    ) -> list[tuple[ItemKey, float]]:
        """Items under namespace `prefix`, best first (an item scores its best vector):
        the `want` items after the first `skip`."""
        n = self._size
        if n == 0 or want <= 0:
            return []
        mask = self._eligible(prefix)
        rows = np.flatnonzero(mask)
        total = skip + want
        if rows.size * 4 < n:  # a small namespace: score only its rows
            return self._ranked(self._score(rows, query), rows, total)[skip:]
        if self.split < self.dims and rows.size >= COARSE_MIN_ROWS:
            found = self._two_stage(query, mask, int(rows.size), total)
            if len(found) == total:
                return found[skip:]
        scores = self._score(slice(0, n), query)
        scores[~mask] = -np.inf
        return self._ranked(scores, np.arange(n), total)[skip:]

    def _two_stage(
        self, query: Floats, mask: npt.NDArray[np.bool_], eligible: int, total: int
    ) -> list[tuple[ItemKey, float]]:
        """Rank by the leading columns, then score the best `pool` rows exactly."""
        coarse = self._head[: self._size] @ query[: self.split]
        coarse[~mask] = -np.inf
        pool = min(eligible, max(COARSE_POOL, 20 * total))
        rows = np.argpartition(-coarse, pool - 1)[:pool] if pool < len(coarse) else np.arange(
            len(coarse)
        )
        return self._ranked(self._score(rows, query), rows, total)

    def _score(self, rows: npt.NDArray[np.intp] | slice, query: Floats) -> Floats:
        scores: Floats = self._head[rows] @ query[: self.split]
        if self.split < self.dims:
            scores += self._tail[rows] @ query[self.split :]
        return scores

    def _ranked(
        self, scores: Floats, rows: npt.NDArray[np.intp], total: int
    ) -> list[tuple[ItemKey, float]]:
        """The best `total` items among `rows` (scored by `scores`)."""
        k = min(len(scores), max(4 * total, 64))
        while True:
            found = self._best_items(scores, rows, k, total)
            if len(found) >= total or k >= len(scores):
                return found
            k = min(len(scores), k * 4)

    def _best_items(
        self, scores: Floats, rows: npt.NDArray[np.intp], k: int, total: int
    ) -> list[tuple[ItemKey, float]]:
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        seen: set[ItemKey] = set()
        out: list[tuple[ItemKey, float]] = []
        for i in top.tolist():
            score = float(scores[i])
            if score == -np.inf:
                break
            item = self._item_of_row[int(rows[i])]
            if item not in seen:
                seen.add(item)
                out.append((item, score))
                if len(out) == total:
                    break
        return out

    def _eligible(self, prefix: str) -> npt.NDArray[np.bool_]:
        n = self._size
        alive = self._alive[:n]
        if not prefix:
            return alive
        return alive & self._under(prefix)[self._ns[:n]]

    def _under(self, prefix: str) -> npt.NDArray[np.bool_]:
        """Which namespace ids are `prefix` or below it (cached; extended for new names)."""
        known = self._prefixes.get(prefix, np.zeros(0, dtype=bool))
        names = self._ns_names
        if len(known) < len(names):
            below = prefix + "."
            new = np.fromiter(
                (name == prefix or name.startswith(below) for name in names[len(known) :]),
                dtype=bool,
                count=len(names) - len(known),
            )
            known = np.concatenate([known, new])
            if len(self._prefixes) >= 1024:
                self._prefixes.clear()
            self._prefixes[prefix] = known
        return known

    def _grow(self, needed: int) -> None:
        """Room for `needed` rows: exactly that many when loading, else double (amortised)."""
        cap = max(needed, len(self._head) * 2) if self._size else needed
        n = self._size

        def resized(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            out = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
            out[:n] = a[:n]
            return out

        self._head, self._tail = resized(self._head), resized(self._tail)
        self._alive, self._ns = resized(self._alive), resized(self._ns)

    def _compact(self) -> None:
        entries = [(item, r, s) for item, rows in self._rows.items() for r, s in rows]
        kept = [r for _, r, _ in entries]
        vectors = np.hstack([self._head[kept], self._tail[kept]])
        seq = self.seq
        self.clear()
        self.seq, self.loaded = seq, True
        self.add_many([(item, s) for item, _, s in entries], vectors)

    def load(self, rows: Iterable[tuple[ItemKey, bytes, int]]) -> None:
        """Append vectors stored as float32 bytes. Vectors of another width (written while
        `store.index.dims` was different) are skipped: their items need a put to re-embed."""
        width = self.dims * 4
        rows = [r for r in rows if len(r[1]) == width]
        if rows:
            blob = b"".join(bytes(r[1]) for r in rows)
            vectors = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), self.dims)
            self.add_many([(item, seq) for item, _, seq in rows], vectors)
