"""The in-memory vector index against a brute-force oracle: growth, removal, compaction,
namespace prefixes, several vectors per item, paging."""

from __future__ import annotations

import numpy as np

from keel.vectors import COARSE_MIN_ROWS, Floats, ItemKey, VectorIndex

DIMS = 16


def unit(rng: np.random.Generator, n: int) -> Floats:
    v = rng.standard_normal((n, DIMS)).astype(np.float32)
    out: Floats = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def oracle(
    vectors: dict[ItemKey, list[Floats]], query: Floats, prefix: str
) -> list[ItemKey]:
    scored = [
        (max(float(v @ query) for v in vs), item)
        for item, vs in vectors.items()
        if not prefix or item[0] == prefix or item[0].startswith(prefix + ".")
    ]
    return [item for _, item in sorted(scored, key=lambda x: (-x[0], x[1]))]


def test_index_matches_brute_force_through_growth_removal_and_compaction() -> None:
    rng = np.random.default_rng(7)
    index = VectorIndex(DIMS)
    truth: dict[ItemKey, list[Floats]] = {}
    items = [(f"users.u{i % 7}" + ("" if i % 3 else ".notes"), f"k{i}") for i in range(3000)]
    vecs = unit(rng, 3000)
    for start in range(0, 3000, 700):  # several appends: the matrix grows
        part = items[start : start + 700]
        index.add_many([(item, 1) for item in part], vecs[start : start + 700])
        for item, v in zip(part, vecs[start : start + 700], strict=True):
            truth[item] = [v]
    for item in items[:2200]:  # most removed: compaction runs
        index.remove(item, before_seq=2)
        del truth[item]
    again = unit(rng, 40)  # re-added items, two vectors each (best one counts)
    for i, item in enumerate(items[:20]):
        index.add_many([(item, 3), (item, 3)], again[2 * i : 2 * i + 2])
        truth[item] = [again[2 * i], again[2 * i + 1]]
    index.remove(items[2500], before_seq=3)
    del truth[items[2500]]
    assert len(index) == len(truth)
    for query in unit(rng, 25):
        for prefix in ("", "users", "users.u3", "users.u3.notes", "users.u", "nobody"):
            want = oracle(truth, query, prefix)
            got = [item for item, _ in index.search(query, prefix, 10)]
            assert got == want[:10], prefix
            paged = [item for item, _ in index.search(query, prefix, 5, skip=7)]
            assert paged == want[7:12], prefix


def test_a_later_write_survives_an_older_delete() -> None:
    index = VectorIndex(DIMS)
    rng = np.random.default_rng(1)
    v = unit(rng, 2)
    index.add_many([(("a", "k"), 5)], v[:1])
    index.remove(("a", "k"), before_seq=5)  # the delete logged by the put at 5 itself
    assert [item for item, _ in index.search(v[0], "", 1)] == [("a", "k")]
    index.remove(("a", "k"), before_seq=6)
    assert index.search(v[0], "", 1) == []


def test_vectors_of_another_width_are_skipped_on_load() -> None:
    index = VectorIndex(DIMS)
    good = np.full(DIMS, 0.25, dtype=np.float32)  # unit length at 16 dims
    index.load([(("a", "x"), good.tobytes(), 1), (("a", "y"), good[:8].tobytes(), 1)])
    assert [item for item, _ in index.search(good, "a", 5)] == [("a", "x")]


def test_two_stage_search_scores_exactly_and_finds_the_best() -> None:
    """Past COARSE_MIN_ROWS eligible rows, a Matryoshka index shortlists by its leading
    columns; the shortlist is scored in full, so scores are exact dot products."""
    rng = np.random.default_rng(3)
    n = COARSE_MIN_ROWS + 500
    vectors = unit(rng, n)
    vectors[:, 8:] *= 0.1  # later columns matter less, as in a Matryoshka model
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(DIMS, coarse_dims=8)
    items = [(f"ns.u{i % 3}", f"k{i}") for i in range(n)]
    index.add_many([(item, 1) for item in items], vectors)
    exact = VectorIndex(DIMS)
    exact.add_many([(item, 1) for item in items], vectors)
    hits = 0
    for query in unit(rng, 20):
        got = index.search(query, "ns", 10)
        for item, score in got:
            assert abs(score - float(vectors[int(item[1][1:])] @ query)) < 1e-5
        want = {item for item, _ in exact.search(query, "ns", 10)}
        hits += len(want & {item for item, _ in got})
        small = index.search(query, "ns.u1", 10)  # a third of the rows: scored exactly
        assert [i for i, _ in small] == [i for i, _ in exact.search(query, "ns.u1", 10)]
    assert hits / 200 >= 0.95
