"""The auth benchmark: what authentication costs per request, in server CPU, next to no auth.

    python -m bench auth            # Keel's five rows and langgraph dev's two (~3 min)
    python -m bench auth --quick    # fewer rounds (~1 min)
    python -m bench auth --smoke    # seconds, Keel only (what tests/bench runs)

All servers are up at once (SQLite for Keel; `langgraph dev` is in-memory) and measured in turn,
in short bursts round after round, by one load generator (bench/auth_load.py): GET /threads/{id}
and POST /threads/search, each server's CPU read from /proc around its bursts. Rows: Keel without
auth, with a built-in API key, with a JWT (verified tokens cached, and not), with a project's
Python `@auth.authenticate` + `@auth.on` owner filter (bench/auth_handler.py); `langgraph dev`
without auth and with the same auth.py (it has no built-in keys or JWT, so those rows are
Keel's alone). A built-in row whose module is not in the tree is reported as skipped.
Results: bench/results/auth.{md,json} (full), auth-<mode>.{md,json} otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.auth_report import render, update_docs
from bench.auth_servers import KeelAuthServer, LangGraphDevAuthServer, missing_module
from bench.contenders import ROOT, LangGraphDevServer, Server, venv_versions
from bench.harness import raise_file_limit, run_client_module, run_meta

# rounds of one burst of `requests` per workload and server
MODES: dict[str, dict[str, Any]] = {
    "full": {"rounds": 40, "requests": 250, "concurrency": 4, "threads": 50, "warmup": 300},
    "quick": {"rounds": 12, "requests": 200, "concurrency": 4, "threads": 20, "warmup": 100},
    "smoke": {"rounds": 2, "requests": 10, "concurrency": 2, "threads": 3, "warmup": 5},
}
# (row key, label, Keel auth mode or langgraph dev with the handler)
KEEL_ROWS = (
    ("keel-none", "Keel, no auth", "none"),
    ("keel-api_key", "Keel, built-in API key", "api_key"),
    ("keel-jwt", "Keel, JWT (verified token cached)", "jwt"),
    ("keel-jwt_nocache", "Keel, JWT (no cache: a signature check per request)", "jwt_nocache"),
    ("keel-handler", "Keel, Python @auth.authenticate + @auth.on owner filter", "handler"),
)
INCUMBENT_ROWS = (
    ("lgdev-none", "langgraph dev, no auth", False),
    ("lgdev-handler", "langgraph dev, the same auth.py", True),
)


def log(msg: str) -> None:
    print(f"[bench auth {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def servers(workdir: Path, incumbent: bool, rows: dict[str, Any]) -> dict[str, Server]:
    """Every row's server, not started yet; rows that cannot run get their reason."""
    out: dict[str, Server] = {}
    for key, label, mode in KEEL_ROWS:
        rows[key] = {"label": label, "status": "ok"}
        missing = missing_module(mode)
        if missing is not None:
            rows[key].update(status="skipped", reason=f"{missing} is not in this tree yet")
            continue
        out[key] = KeelAuthServer(workdir / key, mode)
    if not incumbent:
        return out
    try:
        LangGraphDevAuthServer.python = LangGraphDevServer.install(log)
    except Exception as exc:
        for key, label, _ in INCUMBENT_ROWS:
            rows[key] = {"label": label, "status": "failed", "reason": f"install: {exc}"[:300]}
        return out
    for key, label, handler in INCUMBENT_ROWS:
        rows[key] = {"label": label, "status": "ok"}
        out[key] = LangGraphDevAuthServer(workdir / key, handler)
    return out


def start(started: dict[str, Server], pending: dict[str, Server], rows: dict[str, Any]) -> None:
    for key, server in pending.items():
        log(f"starting {rows[key]['label']}")
        try:
            server.prepare()
            server.start()
            started[key] = server
            rows[key]["boot_s"] = server.boot_seconds
        except Exception as exc:
            server.stop()
            rows[key].update(status="failed", reason=f"start: {type(exc).__name__}: {exc}"[:400])


def measure(cfg: dict[str, Any], started: dict[str, Server], rows: dict[str, Any]) -> None:
    spec = {
        **{k: cfg[k] for k in ("rounds", "requests", "concurrency", "threads", "warmup")},
        "servers": [
            {"name": key, "url": s.url, "pids": s.pids(), "headers": getattr(s, "headers", {})}
            for key, s in started.items()
        ],
    }
    budget = 600 + cfg["rounds"] * len(started) * cfg["requests"] * 0.1
    log(f"measuring {len(started)} servers: {cfg['rounds']} rounds of {cfg['requests']} requests")
    result = run_client_module("bench.auth_load", spec, budget)
    for key in started:
        if "error" in result:
            rows[key].update(status="failed", reason=result["error"])
        else:
            rows[key]["figures"] = result[key]


def bench(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    pending = servers(workdir, cfg["incumbent"], rows)
    started: dict[str, Server] = {}
    try:
        start(started, pending, rows)
        if started:
            measure(cfg, started, rows)
    finally:
        for server in started.values():
            server.stop()
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench auth", description=__doc__.split("\n")[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="12 rounds instead of 40")
    group.add_argument("--smoke", action="store_true", help="seconds; Keel only")
    parser.add_argument(
        "--incumbent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="langgraph dev with the same auth.py (default: on, except --smoke)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--update-docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the table into docs/benchmarks.md (default: only for the full mode)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    cfg["incumbent"] = args.incumbent if args.incumbent is not None else mode != "smoke"
    raise_file_limit()
    started = time.perf_counter()
    meta = run_meta(mode, "python -m bench auth", argv if argv is not None else sys.argv[2:])
    meta["config"] = cfg
    with tempfile.TemporaryDirectory(prefix="keel-bench-auth-") as tmp:
        rows = bench(cfg, Path(tmp))
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["machine"]["load_avg_at_end"] = os.getloadavg()
    meta["versions"] = venv_versions(
        Path(sys.executable), ["keel-runtime", "langgraph-sdk", "pyjwt", "uvicorn"]
    )
    if cfg["incumbent"]:
        meta["versions"]["langgraph dev"] = venv_versions(
            LangGraphDevAuthServer.python, ["langgraph-api", "langgraph-runtime-inmem"]
        )
    results = {"meta": meta, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "auth" if mode == "full" else f"auth-{mode}"
    markdown = render(results)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (args.out / f"{name}.md").write_text(markdown)
    if args.update_docs if args.update_docs is not None else mode == "full":
        update_docs(ROOT / "docs" / "benchmarks.md", markdown)
    print(markdown)
    log(f"done in {meta['seconds']} s; wrote {args.out / name}.md and .json")
    return 0
