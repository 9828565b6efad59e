"""The auth benchmark's results as Markdown (bench/auth.py): server CPU per request for each
row, what auth adds over the same server without auth, Keel ÷ langgraph dev, the target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN = "<!-- bench-auth:begin (written by `python -m bench auth`; do not edit by hand) -->"
END = "<!-- bench-auth:end -->"
WORKLOADS = (("get", "GET /threads/{id}"), ("search", "POST /threads/search"))
TARGET_MS = 0.3  # issue 11: auth cost per request, API keys and JWT (cached)
TARGET_ROWS = ("keel-api_key", "keel-jwt")
PAIRS = (("keel-none", "lgdev-none"), ("keel-handler", "lgdev-handler"))


def baseline(key: str) -> str:
    """The same server without auth."""
    return "keel-none" if key.startswith("keel") else "lgdev-none"


def cpu(rows: dict[str, Any], key: str, workload: str) -> float | None:
    row = rows.get(key) or {}
    value = ((row.get("figures") or {}).get(workload) or {}).get("server_cpu_ms_per_request")
    return float(value) if isinstance(value, int | float) else None


def error(rows: dict[str, Any], key: str, workload: str) -> float | None:
    """The standard error of a row's auth cost (both figures' errors combined)."""
    squares = 0.0
    for name in (key, baseline(key)):
        figures = ((rows.get(name) or {}).get("figures") or {}).get(workload) or {}
        value = figures.get("server_cpu_ms_se")
        if key == baseline(key) or not isinstance(value, int | float):
            return None
        squares += value * value
    return float(squares**0.5)


def cost(rows: dict[str, Any], key: str, workload: str) -> float | None:
    """What auth adds per request over the same server without auth."""
    mine, base = cpu(rows, key, workload), cpu(rows, baseline(key), workload)
    if mine is None or base is None or key == baseline(key):
        return None
    return mine - base


def ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def row_line(rows: dict[str, Any], key: str) -> str:
    row = rows[key]
    if row.get("status") != "ok" or "figures" not in row:
        reason = row.get("reason", row.get("status"))
        return f"| {row['label']} | {row.get('status')}: {reason} | | | | |"
    cells = []
    for workload, _ in WORKLOADS:
        spread = error(rows, key, workload)
        plus = f" ± {spread:.3f}" if spread is not None else ""
        cells += [ms(cpu(rows, key, workload)), ms(cost(rows, key, workload), signed=True) + plus]
    p50 = [(row["figures"].get(w) or {}).get("p50_ms") for w, _ in WORKLOADS]
    latency = " / ".join(f"{v:.2f}" if isinstance(v, int | float) else "—" for v in p50)
    errors = row["figures"].get("errors")
    note = f" ({errors} errors: {row['figures'].get('first_error')})" if errors else ""
    return f"| {row['label']}{note} | " + " | ".join(cells) + f" | {latency} |"


def ratios(rows: dict[str, Any]) -> list[str]:
    lines = []
    for keel, incumbent in PAIRS:
        parts = []
        for workload, name in WORKLOADS:
            mine, theirs = cpu(rows, keel, workload), cpu(rows, incumbent, workload)
            if mine is not None and theirs:
                parts.append(f"{name} {mine / theirs:.2f}x")
        if parts:
            pair = f"{rows[keel]['label']} ÷ {rows[incumbent]['label']}"
            lines.append(f"- {pair}: " + ", ".join(parts))
    return lines


def verdicts(rows: dict[str, Any]) -> list[str]:
    lines = []
    for key in TARGET_ROWS:
        if key not in rows:
            continue
        costs = [cost(rows, key, w) for w, _ in WORKLOADS]
        if any(c is None for c in costs):
            lines.append(f"- {rows[key]['label']}: not measured ({rows[key].get('reason', '')})")
            continue
        worst = max(c for c in costs if c is not None)
        verdict = "met" if worst <= TARGET_MS else "**missed**"
        lines.append(f"- {rows[key]['label']}: at most {worst:+.3f} ms: {verdict}")
    return lines


def render(results: dict[str, Any]) -> str:
    meta, rows = results["meta"], results["rows"]
    cfg, machine = meta["config"], meta["machine"]
    out = [
        f"Run: {meta['date']}, `{meta['command']}` ({meta['mode']}, {meta['seconds']} s), "
        f"{machine['nproc']} cores ({machine['cpu']}), load average at start "
        f"{machine['load_avg_at_start'][0]:.2f}. {cfg['rounds']} rounds of a burst of "
        f"{cfg['requests']} requests per workload and server, {cfg['concurrency']} keep-alive "
        "connections; server CPU over all bursts ÷ their requests.",
        "",
        "| server CPU per request, ms | GET /threads/{id} | auth cost | POST /threads/search "
        "| auth cost | p50 latency GET / search, ms |",
        "|---|---|---|---|---|---|",
        *(row_line(rows, key) for key in rows),
        "",
        "*auth cost*: the row minus the same server without auth, in the same run, ± its "
        "standard error (from the spread of the bursts).",
        "",
    ]
    if ratios(rows):
        out += ["Keel ÷ langgraph dev, server CPU per request (lower is better):"]
        out += [*ratios(rows), ""]
    out += [f"Target (issue 11): auth cost ≤ {TARGET_MS} ms per request.", *verdicts(rows)]
    return "\n".join(out) + "\n"


def update_docs(path: Path, markdown: str) -> None:
    """Replace the text between the markers in docs/benchmarks.md."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} lacks the auth benchmark markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + "\n" + markdown + END + tail)
