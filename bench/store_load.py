"""The store benchmark's workloads, each in its own process (see bench/store.py).

    python -m bench.store_load '{"workload": "inproc", ...}'

- `inproc`: Keel's store in this process (`open_storage(...).store`): put the items through
  `abatch` (batches of puts, a few batches at once), reopen, time the first search (it loads the
  vectors), then every query in both scopes; returns latencies and the keys found.
- `http_put`: N clients, each with its own connection, `store.put_item` one item per request,
  over a range of items (optionally until a deadline: then it stops taking new items).
- `http_search`: one client, sequential `store.search_items`; the first request is timed apart
  (on a fresh server it loads the vectors).

Prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench import procfs
from bench.client import Meter, make_client, summary
from bench.store_corpus import ROOT_NS, Corpus, Query, build_corpus, make_queries

SCOPES = ("all", "user")


def scope_prefix(query: Query, scope: str) -> tuple[str, ...]:
    return (ROOT_NS,) if scope == "all" else (ROOT_NS, query.user)


def searches(corpus: Corpus, count: int) -> list[tuple[int, str, Query]]:
    """(query index, scope, query): each query over everything, then within its user."""
    queries = make_queries(corpus, count)
    return [(i, scope, q) for i, q in enumerate(queries) for scope in SCOPES]


class Usage:
    """CPU of this process and of the database, and what the rest of the machine used, over a
    section (the in-process workloads: this process is the store)."""

    def __init__(self, db_pids: list[int]) -> None:
        self.db_pids = db_pids

    def _db(self) -> float:
        return procfs.cpu_seconds(self.db_pids) if self.db_pids else 0.0

    def __enter__(self) -> Usage:
        self.t0 = time.perf_counter()
        self.own0, self.db0 = procfs.own_cpu_seconds(), self._db()
        self.machine0 = procfs.machine_cpu_seconds()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.own = procfs.own_cpu_seconds() - self.own0
        self.db = self._db() - self.db0
        self.machine = procfs.machine_cpu_seconds()[0] - self.machine0

    def per_item(self, n: int) -> dict[str, Any]:
        n = max(n, 1)
        rest = max(self.machine - self.own - self.db, 0.0)
        return {
            "wall_s": self.wall,
            "cpu_ms_per_item": self.own * 1000 / n,
            "db_cpu_ms_per_item": self.db * 1000 / n,
            "rest_cores": rest / self.wall if self.wall else None,
        }


def rest_cores(per: dict[str, Any]) -> Any:
    """Cores used by processes not under test during a Meter's section."""
    return dict(per.get("cpu_split", {})).get("rest of the machine", {}).get("cores")


def latency_summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    return {scope: summary(values) for scope, values in samples.items()}


# ---- in-process ---------------------------------------------------------------------------


async def inproc(spec: dict[str, Any]) -> dict[str, Any]:
    from langgraph.store.base import PutOp

    from keel.settings import Settings, StoreSettings
    from keel.storage import open_storage

    corpus = build_corpus(int(spec["corpus"]))
    start, end = spec["load"]
    settings = Settings(
        database=spec["database"], base_dir=Path(spec["workdir"]), store=StoreSettings()
    )
    db_pids: list[int] = spec.get("db_pids", [])
    out: dict[str, Any] = {}

    t0 = time.perf_counter()
    storage = await open_storage(settings)
    out["open_s"] = time.perf_counter() - t0
    try:
        store = storage.store
        assert store.embedder is not None, "the store has no embedder"
        t0 = time.perf_counter()
        await store.embedder.embed(["warm-up"])
        out["embedder_first_s"] = time.perf_counter() - t0

        batch, concurrency = int(spec["batch"]), int(spec["concurrency"])
        batches = [range(i, min(i + batch, end)) for i in range(start, end, batch)]
        cursor = 0
        batch_seconds: list[float] = []

        async def loader() -> None:
            nonlocal cursor
            while cursor < len(batches):
                items = batches[cursor]
                cursor += 1
                ops = [
                    PutOp(corpus.namespace(i), corpus.item_key(i), corpus.value(i)) for i in items
                ]
                t = time.perf_counter()
                await store.abatch(ops)
                batch_seconds.append(time.perf_counter() - t)

        with Usage(db_pids) as usage:
            await asyncio.gather(*(loader() for _ in range(concurrency)))
        items = end - start
        out["put"] = {
            "items": items,
            "batch": batch,
            "concurrency": concurrency,
            "items_per_s": items / usage.wall if usage.wall else None,
            "batch_p50_ms": summary(batch_seconds)["p50_ms"],
            **usage.per_item(items),
        }
        # embedding alone, the same batches, for the split of the put cost
        sample = [[corpus.value(i) for i in b] for b in batches[: max(1, min(len(batches), 20))]]
        from bench.store_corpus import embedded_text

        t0 = time.perf_counter()
        embedded = 0
        for values in sample:
            await store.embedder.embed([embedded_text(v) for v in values])
            embedded += len(values)
        out["put"]["embed_only_items_per_s"] = embedded / (time.perf_counter() - t0)
    finally:
        await storage.close()

    # a fresh store on the same database: the first search loads the vectors
    t0 = time.perf_counter()
    storage = await open_storage(settings)
    out["reopen_s"] = time.perf_counter() - t0
    try:
        store = storage.store
        assert store.embedder is not None
        await store.embedder.embed(["warm-up"])
        plan = searches(corpus, int(spec["queries"]))
        first = plan[0][2]
        t0 = time.perf_counter()
        await store.asearch(scope_prefix(first, "all"), query=first.text, limit=10)
        out["cold_search_ms"] = (time.perf_counter() - t0) * 1000
        out["rss_after_load_mib"] = procfs.rss_bytes([os.getpid()]) / 2**20
        for _, scope, q in plan[:5]:  # warm-up
            await store.asearch(scope_prefix(q, scope), query=q.text, limit=10)
        samples: dict[str, list[float]] = {s: [] for s in SCOPES}
        embed_only: list[float] = []
        found: dict[str, list[list[str]]] = {s: [] for s in SCOPES}
        deadline = time.perf_counter() + float(spec["search_seconds"])
        with Usage(db_pids) as usage:
            for _, scope, q in plan:
                if time.perf_counter() > deadline:
                    break
                t = time.perf_counter()
                got = await store.asearch(scope_prefix(q, scope), query=q.text, limit=10)
                samples[scope].append(time.perf_counter() - t)
                found[scope].append([item.key for item in got])
        n = sum(len(v) for v in samples.values())
        for _, _, q in plan[: len(plan) // 2]:
            t = time.perf_counter()
            await store.embedder.embed([q.text])
            embed_only.append(time.perf_counter() - t)
        out["search"] = {
            **latency_summary(samples),
            **usage.per_item(n),
            "embed_query": summary(embed_only),
            "found": found,
        }
        out["rss_after_searches_mib"] = procfs.rss_bytes([os.getpid()]) / 2**20
    finally:
        await storage.close()
    return out


# ---- over HTTP ----------------------------------------------------------------------------


async def http_put(spec: dict[str, Any]) -> dict[str, Any]:
    corpus = build_corpus(int(spec["corpus"]))
    start, end = spec["load"]
    prefix = spec.get("key_prefix", "")
    clients = int(spec["clients"])
    deadline = spec.get("seconds")
    pool = [make_client(spec["url"], connections=1, read_timeout=120) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    cursor = start
    stop_at = time.perf_counter() + float(deadline) if deadline else None

    async def worker(client: Any) -> None:
        nonlocal cursor
        while cursor < end and (stop_at is None or time.perf_counter() < stop_at):
            i = cursor
            cursor += 1
            t = time.perf_counter()
            try:
                await client.store.put_item(
                    list(corpus.namespace(i)), prefix + corpus.item_key(i), corpus.value(i)
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - t)

    try:
        # warm-up: one put in a namespace of its own, so the server has loaded its model
        t = time.perf_counter()
        await pool[0].store.put_item(["warmup"], "w", {"text": "warm-up"})
        warmup = time.perf_counter() - t
        with Meter.of(spec) as meter:
            await asyncio.gather(*(worker(c) for c in pool))
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    done = len(latencies)
    per = meter.per_run(done)
    return {
        "clients": clients,
        "items": done,
        "loaded_through": cursor,  # items [start, cursor) were attempted
        "items_per_s": done / meter.wall if meter.wall else None,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "stopped_by_deadline": cursor < end,
        "warmup_put_ms": warmup * 1000,
        "latency": summary(latencies),
        "wall_s": meter.wall,
        "server_cpu_ms_per_item": per["server_cpu_ms_per_run"],
        "db_cpu_ms_per_item": per["db_cpu_ms_per_run"],
        "client_cpu_ms_per_item": per["client_cpu_ms_per_run"],
        "server_cpu_util": per["server_cpu_util"],
        "client_cpu_util": per["client_cpu_util"],
        "rest_cores": rest_cores(per),
    }


async def http_search(spec: dict[str, Any]) -> dict[str, Any]:
    corpus = build_corpus(int(spec["corpus"]))
    plan = searches(corpus, int(spec["queries"]))
    client = make_client(spec["url"], connections=1, read_timeout=300)
    out: dict[str, Any] = {}
    try:
        # on a fresh server: a put (in a namespace of its own) loads the model, then the first
        # search loads the vectors
        t0 = time.perf_counter()
        await client.store.put_item(["warmup"], "w", {"text": "warm-up"})
        out["first_put_ms"] = (time.perf_counter() - t0) * 1000
        first = plan[0][2]
        t0 = time.perf_counter()
        await client.store.search_items(
            list(scope_prefix(first, "all")), query=first.text, limit=10
        )
        out["cold_search_ms"] = (time.perf_counter() - t0) * 1000
        for _, scope, q in plan[:5]:
            await client.store.search_items(list(scope_prefix(q, scope)), query=q.text, limit=10)
        samples: dict[str, list[float]] = {s: [] for s in SCOPES}
        found: dict[str, list[list[str]]] = {s: [] for s in SCOPES}
        errors: list[str] = []
        deadline = time.perf_counter() + float(spec["seconds"])
        with Meter.of(spec) as meter:
            for _, scope, q in plan:
                if time.perf_counter() > deadline:
                    break
                t = time.perf_counter()
                try:
                    got = await client.store.search_items(
                        list(scope_prefix(q, scope)), query=q.text, limit=10
                    )
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    found[scope].append([])
                    continue
                samples[scope].append(time.perf_counter() - t)
                found[scope].append([item["key"] for item in got["items"]])
        n = sum(len(v) for v in samples.values())
        per = meter.per_run(n)
        out.update(
            {
                **latency_summary(samples),
                "errors": len(errors),
                "first_error": errors[0] if errors else None,
                "server_cpu_ms_per_search": per["server_cpu_ms_per_run"],
                "client_cpu_ms_per_search": per["client_cpu_ms_per_run"],
                "rest_cores": rest_cores(per),
                "found": found,
            }
        )
    finally:
        await client.aclose()
    return out


WORKLOADS = {"inproc": inproc, "http_put": http_put, "http_search": http_search}


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    spec = json.loads(sys.argv[1])
    try:
        result = asyncio.run(WORKLOADS[spec["workload"]](spec))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:800]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
