"""The results as Markdown: the comparison table (absolute figures, then Keel ÷ contender per
row), then Keel on PostgreSQL's worker scaling and worker kill -9 sections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:begin (written by `python -m bench`; do not edit by hand) -->"
END = "<!-- bench:end -->"

COLUMNS = ("keel", "keel-pg", "keel-pg-w1", "keel-pg-w2", "lgdev", "lgdev10", "aegra")
SHORT = {
    "keel": "Keel (SQLite)",
    "keel-pg": "Keel (Postgres)",
    "keel-pg-w1": "Keel (Postgres, API + 1 worker)",
    "keel-pg-w2": "Keel (Postgres, API + 2 workers)",
    "lgdev": "langgraph dev",
    "lgdev10": "langgraph dev -n10",
    "aegra": "Aegra (Postgres)",
}
NOISE_CORES = 0.25  # CPU used by processes not under test, worth a footnote
# ratio columns, numerator ÷ denominator, when both ran: Keel on SQLite against every incumbent,
# Keel on PostgreSQL against Aegra on the same PostgreSQL cluster
RATIOS = (
    ("keel", "lgdev"),
    ("keel", "lgdev10"),
    ("keel", "aegra"),
    ("keel-pg", "aegra"),
    ("keel-pg-w2", "aegra"),
)

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
    out = [*header(results, with_ratios=bool(present)), ""]
    if present:
        out += [*table(results, present), ""]
    if contenders or isinstance(results.get("floor"), dict):
        out += [*notes(results), ""]
    if isinstance(results.get("scaling"), dict):
        out += [*scaling_section(results["scaling"]), ""]
    if isinstance(results.get("worker_kill"), dict):
        out += [*worker_kill_section(results["worker_kill"]), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def table(results: dict[str, Any], present: list[str]) -> list[str]:
    contenders = results.get("contenders", {})
    pairs = [(a, b) for a, b in RATIOS if a in present and b in present]
    floor = results.get("floor") if isinstance(results.get("floor"), dict) else None
    head = ["Figure"]
    if floor is not None:
        head.append("Floor (in-process)")
    head += [SHORT[k] for k in present]
    head += [f"{SHORT[a]} ÷ {SHORT[b]}" for a, b in pairs]
    keel_floor = floor is not None and "keel" in present
    if keel_floor:
        head.append(f"{SHORT['keel']} ÷ floor")
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
        for a, b in pairs:
            cells.append(ratio(values[a], values[b]) if lower is not None else "")
        if keel_floor:
            cells.append(ratio(values["keel"], floor_value) if floor_value else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def header(results: dict[str, Any], with_ratios: bool = True) -> list[str]:
    meta = results.get("meta", {})
    m = meta.get("machine", {})
    out = [
        f"Mode `{meta.get('mode')}`, {meta.get('date')}, {meta.get('seconds')} s; "
        f"`{meta.get('command')}`",
        "",
        f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM, "
        f"Linux {m.get('kernel')}, Python {m.get('python')}, "
        f"load average at start {', '.join(f'{x:.2f}' for x in m.get('load_avg_at_start', []))}"
        + (
            f", at the end {', '.join(f'{x:.2f}' for x in m['load_avg_at_end'])}."
            if m.get("load_avg_at_end")
            else "."
        ),
    ]
    if with_ratios:
        out += [
            "",
            "Ratios are Keel ÷ contender, taken in the same run: below 1x is better for Keel on "
            "every row except throughput, where above 1x is better. Keel on SQLite is compared "
            "with every incumbent; Keel on PostgreSQL with Aegra, which runs on the same "
            "PostgreSQL cluster (a database each).",
        ]
    return out


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
        "1.0 s, so a server that resumes at once finishes about restart + 2.0 s after the kill. "
        "Keel on SQLite re-queues the run as soon as it restarts (it holds the file alone); on "
        "PostgreSQL another process may still hold the run, so the restarted server waits for "
        "its lease (`KEEL_LEASE_SECONDS`, 3 s) to run out. For Keel on PostgreSQL with worker "
        "processes, every process (API and workers) is killed and restarted.",
        "",
        "How each row is measured: see docs/benchmarks.md. The 1,000-run rows, the RSS rows and "
        "kill -9 run on a fresh server whose concurrency limit is raised to 1,000 "
        "(`KEEL_WORKERS`, per Keel process that executes runs; `--n-jobs-per-worker`; Aegra has "
        "no limit); both langgraph dev columns share that server. RSS of Keel with worker "
        "processes is the sum over its processes; PostgreSQL's memory is not in any RSS row.",
    ]
    return out


SCALING_GRAPH_LABEL = {"three": "3 nodes", "heavy": "`heavy`, 10 CPU-bound nodes"}


def _tp(entry: dict[str, Any], graph: str, clients: int) -> dict[str, Any] | None:
    got = entry.get(f"{graph}-{clients}")
    return got if isinstance(got, dict) else None


def _runs_per_s(tp: dict[str, Any] | None) -> Value:
    if tp is None:
        return None
    if "error" in tp:
        return "error"
    value = tp.get("runs_per_s")
    return float(value) if isinstance(value, int | float) else None


def scaling_section(data: dict[str, Any]) -> list[str]:
    out = ["### Keel on PostgreSQL: 1 vs 2 worker processes", ""]
    if "error" in data:
        return [*out, f"Not measured: {data['error']}"]
    configs: dict[str, Any] = data.get("configs", {})
    keys = [k for k in ("keel-pg", "keel-pg-w1", "keel-pg-w2") if k in configs]
    names = {
        "keel-pg": "`keel serve` (workers in-process)",
        "keel-pg-w1": "API + 1 `keel worker`",
        "keel-pg-w2": "API + 2 `keel worker`",
    }
    head = ["create thread + runs.wait, runs/s", *(names[k] for k in keys)]
    both = "keel-pg-w1" in keys and "keel-pg-w2" in keys
    if both:
        head.append("2 workers ÷ 1 worker")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for graph in data.get("graphs", []):
        for clients in data.get("clients", []):
            values = {k: _runs_per_s(_tp(configs[k], graph, clients)) for k in keys}
            cells = [f"{SCALING_GRAPH_LABEL.get(graph, graph)}, {clients} clients"]
            cells += [fmt(values[k]) for k in keys]
            if both:
                cells.append(ratio(values["keel-pg-w2"], values["keel-pg-w1"]))
            lines.append("| " + " | ".join(cells) + " |")
    out += [*lines, ""]
    for key in keys:
        if "error" in configs[key]:
            out.append(f"- {names[key]}: {configs[key]['error']}")
    out += [
        "Where the CPU went (cores busy, averaged over the measured window; the machine has "
        f"{data.get('nproc') or 2}): each Keel process, PostgreSQL (all its processes), the load "
        "generator, and the rest of the machine (the kernel's share of loopback networking, "
        "anything else running). CPU ms per run in parentheses.",
        "",
    ]
    roles = ["keel serve / API", "worker 1", "worker 2", "PostgreSQL", "load generator"]
    head = ["workload", "deployment", "runs/s", *roles, "rest", "machine busy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for graph in data.get("graphs", []):
        for clients in data.get("clients", []):
            for key in keys:
                tp = _tp(configs[key], graph, clients)
                if tp is None or "error" in tp or not isinstance(tp.get("cpu_split"), dict):
                    continue
                split: dict[str, Any] = tp["cpu_split"]
                cells = [
                    f"{SCALING_GRAPH_LABEL.get(graph, graph)}, {clients}",
                    names[key],
                    fmt(tp.get("runs_per_s")),
                ]
                for role in roles:
                    name = {"keel serve / API": ("keel serve", "API (serve --no-workers)")}.get(
                        role, (role,)
                    )
                    got = next((split[n] for n in name if n in split), None)
                    cells.append(_cores(got))
                cells.append(_cores(split.get("rest of the machine")))
                busy = tp.get("machine_busy_cores")
                cells.append(f"{busy:.2f}" if isinstance(busy, int | float) else "—")
                lines.append("| " + " | ".join(cells) + " |")
    out += lines
    errors = [
        f"{key} {graph}-{clients}: {tp.get('errors')} failed, first: {tp.get('first_error')}"
        for key in keys
        for graph in data.get("graphs", [])
        for clients in data.get("clients", [])
        if (tp := _tp(configs[key], graph, clients)) is not None and tp.get("errors")
    ]
    if errors:
        out += ["", *(f"- {e}" for e in errors)]
    return out


def _cores(got: Any) -> str:
    if not isinstance(got, dict):
        return "—"
    return f"{got['cores']:.2f} ({got['ms_per_run']:.1f})"


def worker_kill_section(data: dict[str, Any]) -> list[str]:
    out = ["### Keel on PostgreSQL: kill -9 of the worker executing a run", ""]
    if "error" in data and not data.get("trials"):
        return [*out, f"Not measured: {data['error']}"]
    head = [
        "trial",
        "re-queued (s)",
        "attempt 2 claimed (s)",
        "its first event at the client (s)",
        "completed (s)",
        "completed minus remaining graph work (s)",
        "outcome",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, trial in enumerate(data.get("trials", []), 1):
        if "error" in trial:
            lines.append(f"| {i} | error: {trial['error']} |" + " |" * (len(head) - 2))
            continue
        outcome = (
            f"{trial['final_status']}, attempt {trial['attempt']}, "
            f"{trial['steps_in_state']}/6 steps; worker {trial['killed_pid']} killed, "
            f"{trial['taken_over_by_pid']} took over"
        )
        cells = [
            str(i),
            fmt(trial.get("requeued_s")),
            fmt(trial.get("claimed_s")),
            fmt(trial.get("first_event_s")),
            fmt(trial.get("finished_s")),
            fmt(trial.get("overhead_s")),
            outcome,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    out += lines
    if "error" in data:
        out += ["", f"Error: {data['error']}"]
    out += [
        "",
        f"An API process and 2 `keel worker` processes (lease {data.get('lease_seconds', 3):g} s, "
        "renewed every 0.5 s). A run of `long` (6 nodes of 0.5 s) is started; 1.25 s after a "
        "worker claimed it, that worker gets SIGKILL. Times are from the kill, read from the runs "
        "table every 10 ms and from a `join_stream` opened on the API process before the kill. "
        '"Remaining graph work" is what the run still had to do from its last checkpoint '
        "(0.5 s per step not yet checkpointed), so the last column is the cost of the failure.",
    ]
    return out


def failures(name: str, part: dict[str, Any]) -> list[str]:
    """A measurement's error and failed requests, as footnote lines."""
    out = [f"{name}: {part['error']}"] if "error" in part else []
    if part.get("errors"):
        out.append(f"{name}: {part['errors']} failed requests, first: {part.get('first_error')}")
    return out


def problems(entry: dict[str, Any]) -> list[str]:
    """Errors and saturation worth a footnote."""
    out: list[str] = []
    noisy: list[str] = []
    for section in ("figures", "phase_b"):
        data = entry.get(section)
        if not isinstance(data, dict):
            continue
        if "error" in data:
            out.append(f"{section}: {data['error']}")
        for name, value in data.items():
            if not isinstance(value, dict):
                continue
            out.extend(failures(name, value))
            rest = dig(value, "cpu_split", "rest of the machine", "cores")
            if isinstance(rest, float) and rest > NOISE_CORES:
                noisy.append(f"{name} {rest:.2f}")
            util = value.get("client_cpu_util")
            if name.startswith("tp") and isinstance(util, float) and util > 0.85:
                out.append(
                    f"{name}: the load generator used {util * 100:.0f}% of a core — "
                    "throughput here is capped by the client, not the server"
                )
        rec = data.get("recovery") if isinstance(data.get("recovery"), dict) else None
        if rec and rec.get("recovered") and rec.get("steps_in_state") not in (None, 6):
            out.append(f"recovery: final state has {rec['steps_in_state']} steps (6 expected)")
        if rec and rec.get("status_before_kill") not in (None, "running"):
            out.append(
                f"recovery: the run was still {rec['status_before_kill']} when the server was "
                "killed (runs left from the row above were ahead of it in the queue), so the "
                "figure includes that backlog"
            )
    if noisy:
        out.append(
            "cores used by processes not under test (other work on the machine, the kernel) "
            f"during: {', '.join(noisy)}"
        )
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
