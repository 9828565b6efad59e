"""The results as a Markdown table: absolute figures, then Keel ÷ contender per row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:begin (written by `python -m bench`; do not edit by hand) -->"
END = "<!-- bench:end -->"

COLUMNS = ("keel", "lgdev", "lgdev10", "aegra")
SHORT = {
    "keel": "Keel (SQLite)",
    "lgdev": "langgraph dev",
    "lgdev10": "langgraph dev -n10",
    "aegra": "Aegra (Postgres)",
}

Value = float | str | None
Getter = Callable[[dict[str, Any]], Value]


def dig(data: dict[str, Any], *path: str) -> Any:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def figure(section: str, *path: str) -> Getter:
    """A value from `figures` (phase A) or `phase_b`; an error string when the workload failed."""

    def get(entry: dict[str, Any]) -> Value:
        root = entry.get("figures") if section == "a" else entry.get("phase_b")
        if not isinstance(root, dict):
            return None
        if len(path) > 1:
            parent = dig(root, *path[:-1])
            if isinstance(parent, dict) and "error" in parent:
                return "error"
        value = dig(root, *path)
        return value if isinstance(value, int | float | str) else None

    return get


def waits_wall(entry: dict[str, Any]) -> Value:
    waits = dig(entry, "phase_b", "waits")
    if not isinstance(waits, dict):
        return None
    if "error" in waits:
        return "error"
    if waits.get("wall_s") is not None and not waits.get("errors"):
        return float(waits["wall_s"])
    done, total = waits.get("completed"), waits.get("runs")
    if waits.get("timed_out"):
        return f"timeout: {done}/{total} done"
    return f"{done}/{total} ok, {waits.get('errors')} errors"


def recovery(entry: dict[str, Any]) -> Value:
    rec = dig(entry, "phase_b", "recovery")
    if not isinstance(rec, dict):
        return None
    if "error" in rec:
        return "error"
    if rec.get("recovered"):
        return float(rec["seconds"])
    status = str(rec.get("final_status"))
    if status.startswith("lost"):
        return "never (thread lost)"
    return f"never ({status} after {rec.get('waited_s'):.0f} s)"


def cpu_split(section: str, clients: int) -> Getter:
    def get(entry: dict[str, Any]) -> Value:
        tp = dig(entry, "figures", f"tp{clients}")
        if not isinstance(tp, dict) or "error" in tp or not tp.get("runs"):
            return None
        return (
            f"{tp['server_cpu_ms_per_run']:.1f} / {tp['client_cpu_ms_per_run']:.1f} "
            f"({tp['client_cpu_util'] * 100:.0f}%)"
        )

    return get


# (label, lower_is_better, getter, floor getter, unit)
Row = tuple[str, bool | None, Getter, Callable[[dict[str, Any]], Value] | None]


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = [
        (
            "create thread + runs.wait p50, 3 nodes, sequential (ms)",
            True,
            figure("a", "seq3", "p50_ms"),
            lambda f: f.get("p50_ms"),
        ),
        (
            "create thread + runs.wait p95, 3 nodes (ms)",
            True,
            figure("a", "seq3", "p95_ms"),
            lambda f: f.get("p95_ms"),
        ),
        (
            "create thread + runs.wait p50, 20 nodes (ms)",
            True,
            figure("a", "seq20", "p50_ms"),
            None,
        ),
        (
            "server CPU per 3-node run, all server processes (ms)",
            True,
            figure("a", "seq3", "server_cpu_ms_per_run"),
            lambda f: f.get("cpu_ms_per_run"),
        ),
        (
            "&nbsp;&nbsp;of which the database's processes (ms)",
            None,
            figure("a", "seq3", "db_cpu_ms_per_run"),
            None,
        ),
        (
            "load generator CPU per 3-node run (ms)",
            None,
            figure("a", "seq3", "client_cpu_ms_per_run"),
            None,
        ),
    ]
    clients_seen: list[int] = []
    for entry in results.get("contenders", {}).values():
        for key in entry.get("figures", {}) or {}:
            if key.startswith("tp") and key[2:].isdigit() and int(key[2:]) not in clients_seen:
                clients_seen.append(int(key[2:]))
    for clients in sorted(clients_seen):
        out.append(
            (
                f"throughput, {clients} concurrent clients (runs/s)",
                False,
                figure("a", f"tp{clients}", "runs_per_s"),
                None,
            )
        )
        out.append(
            (
                f"&nbsp;&nbsp;CPU ms per run at {clients}: server / load generator (its core use)",
                None,
                cpu_split("a", clients),
                None,
            )
        )
    out += [
        (
            "stream, 200 custom events: first event p50 (ms)",
            True,
            figure("a", "stream", "first_p50_ms"),
            None,
        ),
        (
            "stream, 200 custom events: total p50 (ms)",
            True,
            figure("a", "stream", "total_p50_ms"),
            None,
        ),
        (
            "interrupt → resume round trip p50 (ms)",
            True,
            figure("a", "interrupt", "resume_p50_ms"),
            None,
        ),
        (
            f"{_n(results, 'waits')} concurrent 1-second runs: wall time (s)",
            True,
            waits_wall,
            None,
        ),
        (
            "&nbsp;&nbsp;peak server RSS during them (MiB)",
            True,
            figure("b", "rss_peak_mib"),
            None,
        ),
        ("server RSS after boot (MiB)", True, figure("b", "rss_boot_mib"), None),
        (
            f"server RSS after creating {_n(results, 'threads')} threads (MiB)",
            True,
            figure("b", "rss_threads_mib"),
            None,
        ),
        ("kill -9 mid-run → run completed after restart (s)", True, recovery, None),
        ("&nbsp;&nbsp;restart until healthy (s)", True, figure("b", "recovery", "restart_s"), None),
    ]
    return out


def _n(results: dict[str, Any], what: str) -> str:
    for entry in results.get("contenders", {}).values():
        phase_b = entry.get("phase_b")
        if isinstance(phase_b, dict):
            if what == "waits" and isinstance(phase_b.get("waits"), dict):
                return f"{phase_b['waits'].get('runs', 1000):,}"
            if what == "threads" and isinstance(phase_b.get("threads"), dict):
                return f"{phase_b['threads'].get('threads', 1000):,}"
    return "1,000"


def fmt(value: Value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(keel: Value, other: Value) -> str:
    if isinstance(keel, int | float) and isinstance(other, int | float) and other > 0:
        r = keel / other
        return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"
    if isinstance(keel, int | float) and isinstance(other, str) and other.startswith("never"):
        return "Keel only"
    return "—"


def render(results: dict[str, Any]) -> str:
    contenders = results.get("contenders", {})
    present = [k for k in COLUMNS if contenders.get(k, {}).get("status") == "ok"]
    others = [k for k in present if k != "keel"]
    has_keel = "keel" in present
    floor = results.get("floor") if isinstance(results.get("floor"), dict) else None
    head = ["Figure"]
    if floor is not None:
        head.append("Floor (in-process)")
    head += [SHORT[k] for k in present]
    if has_keel:
        head += [f"Keel ÷ {SHORT[k]}" for k in others]
        if floor is not None:
            head.append("Keel ÷ floor")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, lower, getter, floor_get in rows(results):
        values = {k: getter(contenders[k]) for k in present}
        if all(v is None for v in values.values()):
            continue
        floor_value = floor_get(floor) if floor is not None and floor_get is not None else None
        cells = [label]
        if floor is not None:
            cells.append(fmt(floor_value))
        cells += [fmt(values[k]) for k in present]
        if has_keel:
            for k in others:
                cells.append(ratio(values["keel"], values[k]) if lower is not None else "")
            if floor is not None:
                cells.append(ratio(values["keel"], floor_value) if floor_value else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*header(results), "", *lines, "", *notes(results)]) + "\n"


def header(results: dict[str, Any]) -> list[str]:
    meta = results.get("meta", {})
    m = meta.get("machine", {})
    return [
        f"Mode `{meta.get('mode')}`, {meta.get('date')}, {meta.get('seconds')} s; "
        f"`{meta.get('command')}`",
        "",
        f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM, "
        f"Linux {m.get('kernel')}, Python {m.get('python')}, "
        f"load average at start {', '.join(f'{x:.2f}' for x in m.get('load_avg_at_start', []))}.",
        "",
        "Ratios are Keel ÷ contender, taken in the same run: below 1x is better for Keel on every "
        "row except throughput, where above 1x is better.",
    ]


def notes(results: dict[str, Any]) -> list[str]:
    out = ["Contenders:", ""]
    for key, entry in results.get("contenders", {}).items():
        versions = ", ".join(f"{p} {v}" for p, v in (entry.get("versions") or {}).items())
        status = entry.get("status")
        line = f"- **{entry.get('label', key)}**: {status}"
        if entry.get("reason"):
            line += f" — {entry['reason']}"
        if versions:
            line += f" ({versions})"
        out.append(line)
        for problem in problems(entry):
            out.append(f"  - {problem}")
    out.append("")
    floor = results.get("floor")
    if isinstance(floor, dict) and "error" not in floor:
        bare = floor.get("no_checkpointer", {})
        out.append(
            "Floor: the 3-node graph with `ainvoke` in one process and Keel's SQLite checkpointer, "
            f"{floor.get('n')} runs: p50 {fmt(floor.get('p50_ms'))} ms, "
            f"{fmt(floor.get('cpu_ms_per_run'))} ms CPU per run (no checkpointer: "
            f"{fmt(bare.get('p50_ms'))} ms, {fmt(bare.get('cpu_ms_per_run'))} ms CPU)."
        )
    elif isinstance(floor, dict):
        out.append(f"Floor: failed — {floor['error']}")
    out += [
        "",
        "Recovery: the `long` graph is killed 1.25 s into its 3 s; its last checkpoint is at "
        "1.0 s, so a server that resumes at once finishes about restart + 2.0 s after the kill.",
        "",
        "How each row is measured: see docs/benchmarks.md. The 1,000-run rows, the RSS rows and "
        "kill -9 run on a fresh server whose concurrency limit is raised to 1,000 "
        "(`KEEL_WORKERS`, `--n-jobs-per-worker`; Aegra has no limit); both langgraph dev columns "
        "share that server.",
    ]
    return out


def problems(entry: dict[str, Any]) -> list[str]:
    """Errors and saturation worth a footnote."""
    out: list[str] = []
    for section in ("figures", "phase_b"):
        data = entry.get(section)
        if not isinstance(data, dict):
            continue
        if "error" in data:
            out.append(f"{section}: {data['error']}")
        for name, value in data.items():
            if not isinstance(value, dict):
                continue
            if "error" in value:
                out.append(f"{name}: {value['error']}")
            if value.get("errors"):
                out.append(
                    f"{name}: {value['errors']} failed requests, first: {value.get('first_error')}"
                )
            util = value.get("client_cpu_util")
            if name.startswith("tp") and isinstance(util, float) and util > 0.85:
                out.append(
                    f"{name}: the load generator used {util * 100:.0f}% of a core — "
                    "throughput here is capped by the client, not the server"
                )
        rec = data.get("recovery") if isinstance(data.get("recovery"), dict) else None
        if rec and rec.get("recovered") and rec.get("steps_in_state") not in (None, 6):
            out.append(f"recovery: final state has {rec['steps_in_state']} steps (6 expected)")
    return out


def update_docs(path: Path, markdown: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{markdown}{END}"
    if BEGIN in text and END in text:
        before = text.split(BEGIN, 1)[0]
        after = text.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n## Latest results\n\n" + block + "\n"
    path.write_text(text)
