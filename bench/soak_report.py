"""The soak's rows and verdicts as text (bench/soak.py).

Targets (issue 12), judged on the rows after warm-up (retention's longest keep time plus a sweep
interval, then one more row; a final row shorter than half a sample is left out):
- RSS: every row within ±10 % of the first row after warm-up.
- database size: every row of the last half of the run (and after warm-up) within ±10 % of that
  half's first row (a plateau: no growth beyond ±10 %).
- p50 of create + wait: every row within ±20 % of the median of the rows after warm-up.
- errors: none, from the clients or in the server's log.
A target the run was too short to judge (fewer than two rows) is "n/a", not a pass.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

RSS_BAND = 0.10
DB_BAND = 0.10
P50_BAND = 0.20
COLUMNS = (
    ("min", 6),
    ("RSS MiB", 8),
    ("DB MiB", 8),
    ("threads", 8),
    ("runs", 8),
    ("run_events", 10),
    ("checkpoints", 11),
    ("p50 ms", 7),
    ("p95 ms", 7),
    ("waits", 6),
    ("CPU %", 6),
    ("errors", 6),
)


def cells(row: dict[str, Any]) -> list[str]:
    def num(value: Any, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    return [
        f"{row['t_s'] / 60:.2f}" + ("*" if row.get("partial") else ""),
        num(row["rss_mib"], ".1f"),
        num(row["db_mib"], ".2f"),
        str(row["threads"]),
        str(row["runs"]),
        str(row["run_events"]),
        str(row["checkpoints"]),
        num(row["p50_ms"], ".1f"),
        num(row["p95_ms"], ".1f"),
        str(row["waits"]),
        num(server_cpu(row), ".0f"),
        str(row["errors"]),
    ]


def server_cpu(row: dict[str, Any]) -> float | None:
    """Percent of one core: Keel's processes plus PostgreSQL's (not the load generator's)."""
    cores = row.get("cores") or {}
    if "server" not in cores:
        return None
    return 100 * (float(cores["server"]) + float(cores.get("database", 0.0)))


def live_header() -> str:
    return "backend   " + " ".join(name.rjust(width) for name, width in COLUMNS)


def live_line(backend: str, row: dict[str, Any]) -> str:
    parts = [value.rjust(width) for value, (_, width) in zip(cells(row), COLUMNS, strict=True)]
    return backend.ljust(10) + " ".join(parts)


def _band(values: list[float], reference: float, band: float) -> tuple[bool, float]:
    """Whether every value is within ±band of the reference; the largest relative deviation."""
    worst = max(abs(v - reference) / reference for v in values) if reference else 0.0
    return worst <= band, worst


def _verdict(ok: bool | None, detail: str) -> dict[str, Any]:
    return {"ok": ok, "detail": detail}


def verdicts(
    rows: list[dict[str, Any]],
    warmup_s: float,
    seconds: float,
    load: dict[str, Any],
    server_errors: int,
) -> dict[str, dict[str, Any]]:
    judged = [r for r in rows if not r.get("partial")]
    warm = [r for r in judged if r["t_s"] >= warmup_s]
    half = max(seconds / 2, warmup_s)
    last_half = [r for r in judged if r["t_s"] >= half]
    short = f"n/a: fewer than two rows after warm-up ({warmup_s / 60:.2f} min)"
    out: dict[str, dict[str, Any]] = {}
    if len(warm) >= 2:
        ok, worst = _band([r["rss_mib"] for r in warm], warm[0]["rss_mib"], RSS_BAND)
        out["rss"] = _verdict(ok, f"max deviation {worst:.1%} from {warm[0]['rss_mib']} MiB")
    else:
        out["rss"] = _verdict(None, short)
    if len(last_half) >= 2:
        first, last = last_half[0]["db_mib"], last_half[-1]["db_mib"]
        ok, worst = _band([r["db_mib"] for r in last_half], first, DB_BAND)
        growth = (last - first) / first if first else 0.0
        detail = f"last half: {first} -> {last} MiB ({growth:+.1%}), max deviation {worst:.1%}"
        out["db_size"] = _verdict(ok, detail)
    else:
        out["db_size"] = _verdict(None, "n/a: fewer than two rows in the last half after warm-up")
    p50s = [float(r["p50_ms"]) for r in warm if r["p50_ms"] is not None]
    if len(p50s) >= 2:
        median = statistics.median(p50s)
        ok, worst = _band(p50s, median, P50_BAND)
        out["p50"] = _verdict(ok, f"max deviation {worst:.1%} from the median {median:.1f} ms")
    else:
        out["p50"] = _verdict(None, short)
    client_errors = sum(int(r["errors"]) for r in rows)
    if "error" in load:
        client_errors += 1
    out["errors"] = _verdict(
        client_errors == 0 and server_errors == 0,
        f"{client_errors} client errors, {server_errors} server log error lines",
    )
    return out


TARGETS = {
    "rss": "server RSS within ±10 % after warm-up",
    "db_size": "database size: no growth beyond ±10 % in the last half",
    "p50": "p50 create + wait flat within ±20 %",
    "errors": "zero errors",
}


def render(data: dict[str, Any]) -> str:
    plan, meta, load = data["plan"], data["meta"], data.get("load") or {}
    rate = plan["rate"]
    mode = "accelerated" if plan["accelerated"] else "normal"
    lines = [
        f"# Soak: {data['label']}, {plan['minutes']} min ({mode})",
        "",
        f"`{meta['command']}`, {meta['date']}, {meta['machine']['nproc']} cores, "
        f"load average {meta['machine']['load_avg_at_start'][0]:.2f} at start.",
        "",
        f"Load: {plan['clients']} clients, one iteration each every {plan['pace']} s "
        f"({rate['iterations_per_s']:.1f} iterations/s = {rate['runs_per_s']:.0f} runs/s, "
        f"{rate['threads_per_s']:.0f} threads/s; half deleted, half left for the TTL); "
        f"{load.get('iterations', '?')} iterations done. "
        f"Config: `{json.dumps(plan['sections']) if plan['sections'] else 'none'}`.",
        "",
        "| " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|" + "---:|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in data["rows"]]
    lines += [
        "",
        f"Warm-up: {plan['warmup_s'] / 60:.2f} min. `*`: a final partial row (not judged). "
        "p50/p95: thread create + 6-step runs.wait in that row's interval (`waits` of them). "
        "CPU %: Keel's processes and PostgreSQL's, in percent of one core.",
        "",
        "| target | verdict | detail |",
        "|---|---|---|",
    ]
    for key, verdict in data["verdicts"].items():
        mark = {True: "pass", False: "FAIL", None: "n/a"}[verdict["ok"]]
        lines.append(f"| {TARGETS[key]} | {mark} | {verdict['detail']} |")
    for sample in data.get("server_error_samples", []):
        lines.append(f"\nserver log: `{sample[:200]}`")
    if load.get("first_error"):
        lines.append(f"\nfirst client error: `{load['first_error']}`")
    return "\n".join(lines) + "\n"
