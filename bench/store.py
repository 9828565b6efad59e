"""The store benchmark: Keel's long-term memory store (semantic search) against `langgraph dev`'s.

    python -m bench store            # 100,000 items, SQLite and PostgreSQL, and langgraph dev
    python -m bench store --quick    # 10,000 items, for development
    python -m bench store --smoke    # 500 items, SQLite only, no incumbent (what the test runs)

Items are ~50-word texts (bench/store_corpus.py) in 1,000 user namespaces. For each Keel backend:
the items are put in-process through `KeelStore.abatch` on a fresh database (throughput with
embedding), then a fresh store on that database answers every query (the first search loads the
vectors); then `keel serve` on the same database answers them over HTTP, and clients put more
items, one per request. Recall@10 is measured against the bench's own exact search (float64
cosine over its own embeddings of every item, same model). Then the incumbent: `langgraph dev`
with the same model (its `store.index.embed` wraps Keel's embedder) and Keel, each from empty,
loaded over HTTP with the same clients, as many items as langgraph dev takes within a time budget
(the same number for Keel), then searched the same way. Results: bench/results/store.md and
.json for the full mode, store-<mode>[-custom].md/.json otherwise (-custom: sizes overridden).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procfs
from bench.contenders import ROOT, KeelOnDatabase, Server, venv_versions
from bench.harness import raise_file_limit, run_client_module, run_meta
from bench.store_corpus import (
    Corpus,
    Query,
    build_corpus,
    embed_corpus,
    exact_top,
    make_queries,
    recall,
)
from bench.store_report import render
from bench.store_servers import EMBEDDER_DEPS, LangGraphDevStoreServer
from tests.support.postgres import PgCluster

MODES: dict[str, dict[str, Any]] = {
    "full": {
        "items": 100_000,
        "queries": 200,
        "http_puts": 5_000,
        "clients": 16,
        "batch": 100,
        "concurrency": 4,
        "search_seconds": 120.0,
        "incumbent_seconds": 300.0,
        "backends": ("sqlite", "postgres"),
        "incumbent": True,
    },
    "quick": {
        "items": 10_000,
        "queries": 100,
        "http_puts": 1_000,
        "clients": 16,
        "batch": 100,
        "concurrency": 4,
        "search_seconds": 60.0,
        "incumbent_seconds": 60.0,
        "backends": ("sqlite", "postgres"),
        "incumbent": True,
    },
    "smoke": {
        "items": 500,
        "queries": 20,
        "http_puts": 50,
        "clients": 4,
        "batch": 50,
        "concurrency": 2,
        "search_seconds": 20.0,
        "incumbent_seconds": 20.0,
        "backends": ("sqlite",),
        "incumbent": False,
    },
}


def log(msg: str) -> None:
    print(f"[bench store {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mib(n: int) -> float:
    return n / 2**20


# ---- the benchmark ------------------------------------------------------------------------


class StoreBench:
    def __init__(self, cfg: dict[str, Any], workdir: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.postgres: PgCluster | None = None
        self.corpus: Corpus
        self.queries: list[Query]
        self.exact: dict[int, dict[str, list[list[str]]]] = {}

    async def prepare(self) -> dict[str, Any]:
        """Corpus, queries, and the exact answers from the bench's own embeddings."""
        from keel.embeddings import load_embedder
        from keel.settings import IndexSettings

        cfg = self.cfg
        t0 = time.perf_counter()
        self.corpus = await asyncio.to_thread(build_corpus, cfg["items"], log)
        self.queries = make_queries(self.corpus, cfg["queries"])
        embedder = load_embedder(IndexSettings(), self.workdir)
        vectors = await embed_corpus(self.corpus, embedder, log)
        qvecs = await embedder.embed([q.text for q in self.queries])
        self.vectors, self.query_vectors = vectors, qvecs
        self.exact[len(self.corpus)] = exact_top(
            vectors, qvecs, self.queries, self.corpus, cfg["items"]
        )
        return {
            "items": len(self.corpus),
            "users": self.corpus.users,
            "queries": len(self.queries),
            "sources": self.corpus.sources,
            "mean_words": sum(len(t.split()) for t in self.corpus.texts) / len(self.corpus),
            "prepare_s": time.perf_counter() - t0,
            "embedder": type(embedder).__name__,
        }

    def exact_for(self, size: int) -> dict[str, list[list[str]]]:
        if size not in self.exact:
            self.exact[size] = exact_top(
                self.vectors, self.query_vectors, self.queries, self.corpus, size
            )
        return self.exact[size]

    def recalls(self, found: dict[str, list[list[str]]], size: int) -> dict[str, Any]:
        exact = self.exact_for(size)
        return {scope: recall(found[scope], exact[scope][: len(found[scope])]) for scope in found}

    def database(self, backend: str, name: str) -> str:
        if backend == "sqlite":
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{self.workdir / name / 'keel.db'}"
        if self.postgres is None:
            self.postgres = PgCluster(self.workdir / "pg", fast=False, log=log)
            log("PostgreSQL: initdb + start")
            self.postgres.start()
        db = self.postgres.create_database().rsplit("/", 1)[1]
        return self.postgres.socket_url(db)

    def spec(self, server: Server | None, workload: str, **extra: Any) -> dict[str, Any]:
        out = {"workload": workload, "corpus": self.cfg["items"], **extra}
        if server is not None:
            out.update(url=server.url, pids=server.pids(), db_pids=server.db_pids())
            out["roles"] = {"server": server.pids()}
        return out

    def run(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        result = run_client_module("bench.store_load", spec, timeout)
        found = result.get("found") or dict(result.get("search", {})).get("found")
        if isinstance(found, dict):
            result.setdefault("recall", self.recalls(found, spec.get("size", self.cfg["items"])))
        result.pop("found", None)
        if isinstance(result.get("search"), dict):
            result["search"].pop("found", None)
        return result

    def keel_backend(self, backend: str) -> dict[str, Any]:
        """In-process load + searches, then `keel serve` on that database: HTTP searches, puts."""
        cfg = self.cfg
        n = len(self.corpus)
        out: dict[str, Any] = {"backend": backend}
        database = self.database(backend, f"keel-{backend}")
        db_pids = self.postgres.pids() if backend == "postgres" and self.postgres else []
        log(f"Keel ({backend}): in-process, put {n:,} items, then search")
        out["inproc"] = self.run(
            self.spec(
                None,
                "inproc",
                database=database,
                workdir=str(self.workdir),
                load=[0, n],
                batch=cfg["batch"],
                concurrency=cfg["concurrency"],
                queries=cfg["queries"],
                search_seconds=cfg["search_seconds"],
                db_pids=db_pids,
            ),
            timeout=n / 20 + 900,
        )
        server = KeelOnDatabase(
            self.workdir / f"serve-{backend}",
            database,
            self.postgres if backend == "postgres" else None,
        )
        try:
            server.prepare()
            server.start()
            out["boot_s"] = server.boot_seconds
            out["rss_boot_mib"] = mib(server.rss())
            log(f"Keel ({backend}): keel serve with {n:,} items, search over HTTP")
            out["http_search"] = self.run(
                self.spec(
                    server, "http_search", queries=cfg["queries"], seconds=cfg["search_seconds"]
                ),
                cfg["search_seconds"] + 600,
            )
            out["rss_loaded_mib"] = mib(server.rss())
            puts = min(cfg["http_puts"], n)
            log(f"Keel ({backend}): {puts:,} puts over HTTP, {cfg['clients']} clients")
            out["http_put"] = self.run(
                self.spec(
                    server, "http_put", load=[0, puts], key_prefix="h", clients=cfg["clients"]
                ),
                puts / 10 + 300,
            )
            out["rss_after_puts_mib"] = mib(server.rss())
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"[:400]
        finally:
            server.stop()
        return out

    def http_contender(self, server: Server, limit: int, seconds: float | None) -> dict[str, Any]:
        """From empty: put items [0, limit) over HTTP (until `seconds`), then search them."""
        cfg = self.cfg
        out: dict[str, Any] = {}
        server.prepare()
        server.start()
        try:
            out["boot_s"] = server.boot_seconds
            out["rss_boot_mib"] = mib(server.rss())
            log(f"{server.label}: put up to {limit:,} items over HTTP, {cfg['clients']} clients")
            put = self.run(
                self.spec(
                    server, "http_put", load=[0, limit], clients=cfg["clients"], seconds=seconds
                ),
                (seconds or limit / 10) + 600,
            )
            out["http_put"] = put
            size = int(put.get("loaded_through", 0))
            out["size"] = size
            out["rss_loaded_mib"] = mib(server.rss())
            if size:
                log(f"{server.label}: search {size:,} items over HTTP")
                out["http_search"] = self.run(
                    self.spec(
                        server,
                        "http_search",
                        queries=cfg["queries"],
                        seconds=cfg["search_seconds"],
                        size=size,
                    ),
                    cfg["search_seconds"] + 600,
                )
                out["rss_searched_mib"] = mib(server.rss())
        finally:
            server.stop()
        return out

    def incumbent(self, backends: list[str]) -> dict[str, Any]:
        cfg = self.cfg
        out: dict[str, Any] = {"budget_s": cfg["incumbent_seconds"], "contenders": {}}
        try:
            python = LangGraphDevStoreServer.install(log)
            LangGraphDevStoreServer.python = python
            out["versions"] = venv_versions(
                python,
                [
                    "langgraph-cli",
                    "langgraph-api",
                    "langgraph-runtime-inmem",
                    "langgraph",
                    *EMBEDDER_DEPS,
                ],
            )
            lg = self.http_contender(
                LangGraphDevStoreServer(self.workdir / "lgdev"),
                len(self.corpus),
                cfg["incumbent_seconds"],
            )
        except Exception as exc:
            out["error"] = f"langgraph dev: {type(exc).__name__}: {exc}"[:400]
            return out
        out["contenders"]["lgdev"] = lg
        size = int(lg.get("size", 0))
        out["size"] = size
        if not size:
            return out
        for backend in backends:
            database = self.database(backend, f"cmp-{backend}")
            server = KeelOnDatabase(
                self.workdir / f"cmp-{backend}",
                database,
                self.postgres if backend == "postgres" else None,
            )
            server.label = f"Keel ({backend})"
            try:
                out["contenders"][f"keel-{backend}"] = self.http_contender(server, size, None)
            except Exception as exc:
                out["contenders"][f"keel-{backend}"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench store", description=__doc__.split("\n")[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="10,000 items")
    group.add_argument("--smoke", action="store_true", help="500 items, SQLite, no incumbent")
    parser.add_argument("--items", type=int, help="corpus size (overrides the mode)")
    parser.add_argument("--queries", type=int, help="number of queries (each in two scopes)")
    parser.add_argument("--http-puts", type=int, help="puts over HTTP on the loaded server")
    parser.add_argument("--clients", type=int, help="concurrent HTTP clients for puts")
    parser.add_argument("--backends", help="comma-separated subset of sqlite,postgres")
    parser.add_argument(
        "--incumbent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="langgraph dev with the same model (default: on, except --smoke)",
    )
    parser.add_argument(
        "--incumbent-seconds", type=float, help="time budget for loading langgraph dev"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    for name in ("items", "queries", "http_puts", "clients", "incumbent_seconds"):
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    if args.backends is not None:
        cfg["backends"] = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if args.incumbent is not None:
        cfg["incumbent"] = args.incumbent
    if any(b not in ("sqlite", "postgres") for b in cfg["backends"]):
        print(f"unknown backends {cfg['backends']}; choose from sqlite,postgres", file=sys.stderr)
        return 2
    raise_file_limit()
    started = time.perf_counter()
    meta = run_meta(mode, "python -m bench store", argv if argv is not None else sys.argv[2:])
    meta["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    meta["machine_busy_at_start"] = procfs.machine_cpu_seconds()[0]
    results: dict[str, Any] = {"meta": meta, "keel": {}}
    with tempfile.TemporaryDirectory(prefix="keel-bench-store-") as tmp:
        bench = StoreBench(cfg, Path(tmp))
        try:
            results["corpus"] = asyncio.run(bench.prepare())
            for backend in cfg["backends"]:
                try:
                    results["keel"][backend] = bench.keel_backend(backend)
                except Exception as exc:
                    results["keel"][backend] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            if cfg["incumbent"]:
                results["incumbent"] = bench.incumbent(list(cfg["backends"]))
            if bench.postgres is not None:
                results["meta"]["postgresql"] = bench.postgres.version()
        finally:
            bench.close()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    results["meta"]["machine"]["load_avg_at_end"] = os.getloadavg()
    results["meta"]["versions"] = venv_versions(
        Path(sys.executable), ["keel-runtime", "langgraph", "numpy", "tokenizers", "psycopg"]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    name = "store" if mode == "full" else f"store-{mode}"
    if cfg != MODES[mode]:
        name += "-custom"  # sizes changed on the command line: keep the mode's results
    markdown = render(results)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (args.out / f"{name}.md").write_text(markdown)
    print(markdown)
    log(f"done in {results['meta']['seconds']} s; wrote {args.out / name}.md and .json")
    return 0
