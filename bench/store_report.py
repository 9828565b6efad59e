"""The store benchmark's results as Markdown: Keel's store at full size with the targets, then
Keel against `langgraph dev` at the same size, in the same run (ratios Keel ÷ langgraph dev)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report import dig, failures, fmt
from bench.report import ratio as _ratio

Value = float | str | None
Getter = Callable[[dict[str, Any]], Value]

BACKENDS = {"sqlite": "Keel (SQLite)", "postgres": "Keel (Postgres)"}
NOISE_CORES = 0.25
# (label, getter, (comparison, threshold) or None)
TARGET_P50_MS = 10.0
TARGET_RECALL = 0.95
TARGET_PUT = 200.0


def ratio(keel: Value, other: Value) -> str:
    """Keel ÷ langgraph dev; small ratios keep two significant digits (0.0023x, not 0.00x)."""
    if isinstance(keel, int | float) and isinstance(other, int | float) and other > 0:
        r = keel / other
        if 0 < r < 0.1:
            return f"{r:.2g}x"
    return _ratio(keel, other)


def num(*path: str) -> Getter:
    def get(entry: dict[str, Any]) -> Value:
        if len(path) > 1:
            parent = dig(entry, *path[:1])
            if isinstance(parent, dict) and "error" in parent:
                return "error"
        value = dig(entry, *path)
        return float(value) if isinstance(value, int | float) else None

    return get


def met(value: Value, target: tuple[str, float] | None) -> str:
    if target is None or not isinstance(value, int | float):
        return ""
    op, threshold = target
    ok = value <= threshold if op == "<=" else value >= threshold
    return "met" if ok else "**missed**"


def keel_rows(cfg: dict[str, Any], n: str) -> list[tuple[str, Getter, tuple[str, float] | None]]:
    le, ge = "<=", ">="
    return [
        (
            f"put with embedding, in-process `abatch` ({cfg.get('batch')} puts per batch, "
            f"{cfg.get('concurrency')} batches at once), {n} items (items/s)",
            num("inproc", "put", "items_per_s"),
            (ge, TARGET_PUT),
        ),
        (
            "&nbsp;&nbsp;CPU per item: Keel's process (ms)",
            num("inproc", "put", "cpu_ms_per_item"),
            None,
        ),
        (
            "&nbsp;&nbsp;CPU per item: PostgreSQL (ms)",
            num("inproc", "put", "db_cpu_ms_per_item"),
            None,
        ),
        (
            "&nbsp;&nbsp;the embedding alone, same batches (items/s)",
            num("inproc", "put", "embed_only_items_per_s"),
            None,
        ),
        (
            f"put with embedding over HTTP, {cfg.get('clients')} clients, one item per request, "
            f"on top of {n} items (items/s)",
            num("http_put", "items_per_s"),
            (ge, TARGET_PUT),
        ),
        (
            "&nbsp;&nbsp;server CPU per put, PostgreSQL included (ms)",
            num("http_put", "server_cpu_ms_per_item"),
            None,
        ),
        (
            "semantic search p50, all users, in-process (ms)",
            num("inproc", "search", "all", "p50_ms"),
            (le, TARGET_P50_MS),
        ),
        (
            "semantic search p95, all users, in-process (ms)",
            num("inproc", "search", "all", "p95_ms"),
            None,
        ),
        (
            "semantic search p50, one user's namespace, in-process (ms)",
            num("inproc", "search", "user", "p50_ms"),
            (le, TARGET_P50_MS),
        ),
        (
            "semantic search p50, all users, over HTTP (ms)",
            num("http_search", "all", "p50_ms"),
            (le, TARGET_P50_MS),
        ),
        (
            "semantic search p95, all users, over HTTP (ms)",
            num("http_search", "all", "p95_ms"),
            None,
        ),
        (
            "semantic search p50, one user's namespace, over HTTP (ms)",
            num("http_search", "user", "p50_ms"),
            (le, TARGET_P50_MS),
        ),
        (
            "&nbsp;&nbsp;of which embedding the query, p50 (ms)",
            num("inproc", "search", "embed_query", "p50_ms"),
            None,
        ),
        (
            "&nbsp;&nbsp;server CPU per search over HTTP (ms)",
            num("http_search", "server_cpu_ms_per_search"),
            None,
        ),
        (
            "recall@10 against exact search, all users, in-process",
            num("inproc", "recall", "all"),
            (ge, TARGET_RECALL),
        ),
        (
            "recall@10 against exact search, one user, in-process",
            num("inproc", "recall", "user"),
            (ge, TARGET_RECALL),
        ),
        (
            "recall@10, all users, over HTTP",
            num("http_search", "recall", "all"),
            (ge, TARGET_RECALL),
        ),
        (
            "recall@10, one user, over HTTP",
            num("http_search", "recall", "user"),
            (ge, TARGET_RECALL),
        ),
        (
            "first search after opening the store, in-process: loads the vectors (ms)",
            num("inproc", "cold_search_ms"),
            None,
        ),
        (
            "first request after `keel serve` starts, a put: loads the model (ms)",
            num("http_search", "first_put_ms"),
            None,
        ),
        (
            "then the first search over HTTP: loads the vectors (ms)",
            num("http_search", "cold_search_ms"),
            None,
        ),
        ("server RSS after boot (MiB)", num("rss_boot_mib"), None),
        (f"server RSS with {n} items, after the searches (MiB)", num("rss_loaded_mib"), None),
        (
            f"in-process: RSS of the process with {n} items loaded (MiB)",
            num("inproc", "rss_after_searches_mib"),
            None,
        ),
    ]


def keel_table(results: dict[str, Any]) -> list[str]:
    keel: dict[str, Any] = results.get("keel", {})
    present = [b for b in BACKENDS if b in keel]
    if not present:
        return []
    cfg = dig(results, "meta", "config") or {}
    n = f"{dig(results, 'corpus', 'items') or cfg.get('items', 0):,}"
    short = {"sqlite": "SQLite", "postgres": "Postgres"}
    head = ["Figure", *(BACKENDS[b] for b in present), "target"]
    head += [f"{short[b]}: target met?" for b in present]
    lines = [
        f"### Keel's store with {n} items",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, getter, target in keel_rows(cfg, n):
        values = [getter(keel[b]) for b in present]
        if all(v is None for v in values):
            continue
        goal = "" if target is None else f"{'≤' if target[0] == '<=' else '≥'} {target[1]:g}"
        cells = [label, *(fmt(v) for v in values), goal, *(met(v, target) for v in values)]
        lines.append("| " + " | ".join(cells) + " |")
    planned = cfg.get("queries")
    notes = [f"- {BACKENDS[b]}: {p}" for b in present for p in problems(keel[b], planned)]
    return [*lines, *(["", *notes] if notes else [])]


CMP_ROWS: list[tuple[str, bool | None, Getter]] = [
    ("put with embedding over HTTP (items/s)", False, num("http_put", "items_per_s")),
    ("&nbsp;&nbsp;put latency p50 (ms)", True, num("http_put", "latency", "p50_ms")),
    ("&nbsp;&nbsp;server CPU per put (ms)", True, num("http_put", "server_cpu_ms_per_item")),
    ("semantic search p50, all users (ms)", True, num("http_search", "all", "p50_ms")),
    ("semantic search p95, all users (ms)", True, num("http_search", "all", "p95_ms")),
    ("semantic search p50, one user's namespace (ms)", True, num("http_search", "user", "p50_ms")),
    (
        "&nbsp;&nbsp;server CPU per search (ms)",
        True,
        num("http_search", "server_cpu_ms_per_search"),
    ),
    ("recall@10 against exact search, all users", False, num("http_search", "recall", "all")),
    ("recall@10 against exact search, one user", False, num("http_search", "recall", "user")),
    ("first search after the load (ms)", True, num("http_search", "cold_search_ms")),
    ("server RSS after boot (MiB)", True, num("rss_boot_mib")),
    ("server RSS with the items loaded and searched (MiB)", True, num("rss_searched_mib")),
]


def incumbent_table(results: dict[str, Any]) -> list[str]:
    inc = results.get("incumbent")
    if not isinstance(inc, dict):
        return []
    out = ["### Keel against langgraph dev, same size, same run, over HTTP", ""]
    if "error" in inc:
        return [*out, f"langgraph dev not measured: {inc['error']}"]
    contenders: dict[str, Any] = inc.get("contenders", {})
    keels = [b for b in BACKENDS if f"keel-{b}" in contenders]
    columns = [*(f"keel-{b}" for b in keels), "lgdev"]
    names = {**{f"keel-{b}": BACKENDS[b] for b in keels}, "lgdev": "langgraph dev"}
    lg = contenders.get("lgdev", {})
    size = int(inc.get("size") or 0)
    total = dig(results, "corpus", "items") or 0
    put = lg.get("http_put", {})
    if put.get("stopped_by_deadline"):
        out.append(
            f"langgraph dev took {put.get('items'):,} items over HTTP in its "
            f"{inc.get('budget_s', 0):g} s budget ({fmt(put.get('items_per_s'))} items/s), so "
            f"the comparison is at {size:,} items, not {total:,}; Keel was loaded with the same "
            f"{size:,} items the same way."
        )
    else:
        out.append(f"Both loaded with all {size:,} items over HTTP, from empty.")
    out.append("")
    head = [
        "Figure",
        *(names[c] for c in columns),
        *(f"{names[c]} ÷ langgraph dev" for c in columns[:-1]),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, lower, getter in CMP_ROWS:
        values = {c: getter(contenders[c]) for c in columns}
        if all(v is None for v in values.values()):
            continue
        cells = [label, *(fmt(values[c]) for c in columns)]
        cells += [
            ratio(values[c], values["lgdev"]) if lower is not None else "" for c in columns[:-1]
        ]
        lines.append("| " + " | ".join(cells) + " |")
    planned = dig(results, "meta", "config", "queries")
    notes = [f"- {names[c]}: {p}" for c in columns for p in problems(contenders[c], planned)]
    out += [*lines, *(["", *notes] if notes else [])]
    out += [
        "",
        "Ratios are Keel ÷ langgraph dev: below 1x is better for Keel, except put throughput and "
        "recall, where above 1x is better.",
    ]
    return out


def targets(results: dict[str, Any]) -> list[str]:
    keel: dict[str, Any] = results.get("keel", {})
    n = f"{dig(results, 'corpus', 'items') or 0:,}"
    checks = [
        (
            f"semantic search p50 ≤ {TARGET_P50_MS:g} ms at {n} items",
            ("<=", TARGET_P50_MS),
            [
                ("in-process, all users", num("inproc", "search", "all", "p50_ms")),
                ("HTTP, all users", num("http_search", "all", "p50_ms")),
            ],
        ),
        (
            f"recall@10 ≥ {TARGET_RECALL:g} against exact search",
            (">=", TARGET_RECALL),
            [
                ("all users", num("inproc", "recall", "all")),
                ("one user", num("inproc", "recall", "user")),
            ],
        ),
        (
            f"put with embedding ≥ {TARGET_PUT:g} items/s",
            (">=", TARGET_PUT),
            [
                ("in-process", num("inproc", "put", "items_per_s")),
                ("HTTP", num("http_put", "items_per_s")),
            ],
        ),
    ]
    out = ["Targets:", ""]
    for title, target, parts in checks:
        cells = []
        for b in (b for b in BACKENDS if b in keel):
            for name, getter in parts:
                value = getter(keel[b])
                cells.append(f"{BACKENDS[b]} {name} {fmt(value)} {met(value, target) or '—'}")
        out.append(f"- {title}: " + "; ".join(cells))
    return out


PHASES = {
    "inproc.put": "in-process puts",
    "inproc.search": "in-process searches",
    "http_put": "HTTP puts",
    "http_search": "HTTP searches",
}


def problems(entry: dict[str, Any], planned: int | None = None) -> list[str]:
    """Errors, searches cut short by their time bound, and measurements during which other
    processes busied the machine."""
    out: list[str] = []
    noisy: list[str] = []
    if "error" in entry:
        out.append(f"error: {entry['error']}")
    for name in ("inproc", "http_search", "http_put"):
        part = entry.get(name)
        if isinstance(part, dict):
            out.extend(failures(name, part))
    for name in ("inproc.search", "http_search"):
        done = dig(entry, *name.split("."), "all", "n")
        if planned and isinstance(done, int) and done < planned:
            out.append(
                f"{PHASES[name]}: only {done} of {planned} queries (each in both scopes) within "
                "the time bound; the latencies are over those"
            )
    for path, label in PHASES.items():
        rest = dig(entry, *path.split("."), "rest_cores")
        if isinstance(rest, float) and rest > NOISE_CORES:
            noisy.append(f"{label} {rest:.2f}")
    if noisy:
        out.append(
            "cores used by processes not under test (other work on the machine, the kernel) "
            f"during: {', '.join(noisy)}"
        )
    return out


def header(results: dict[str, Any]) -> list[str]:
    meta = results.get("meta", {})
    m = meta.get("machine", {})
    corpus = results.get("corpus", {})
    loads = ", ".join(f"{x:.2f}" for x in m.get("load_avg_at_start", []))
    end = ", ".join(f"{x:.2f}" for x in m.get("load_avg_at_end", []))
    versions = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())
    out = [
        f"Mode `{meta.get('mode')}`, {meta.get('date')}, {meta.get('seconds')} s; "
        f"`{meta.get('command')}`",
        "",
        f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM, "
        f"Linux {m.get('kernel')}, Python {m.get('python')}, load average at start {loads}"
        + (f", at the end {end}." if end else "."),
        f"Versions: {versions}"
        + (f", {meta['postgresql']}" if meta.get("postgresql") else "")
        + ".",
    ]
    if corpus:
        sources = ", ".join(f"{k} {v:,}" for k, v in corpus.get("sources", {}).items())
        out += [
            "",
            f"Corpus: {corpus.get('items', 0):,} distinct texts of "
            f"{corpus.get('mean_words', 0):.0f} words on average ({sources}), "
            f"in {corpus.get('users')} namespaces "
            f'`("memories", "user-N")`; {corpus.get("queries")} queries, each searched over '
            '`("memories",)` (all users) and within one user, `limit=10`. Embedder: '
            f"{corpus.get('embedder')} (Keel's default), the same for every contender.",
        ]
    return out


def render(results: dict[str, Any]) -> str:
    out = [*header(results), ""]
    table = keel_table(results)
    if table:
        out += [*table, "", *targets(results), ""]
    out += [*incumbent_table(results), ""]
    return "\n".join(out).rstrip("\n") + "\n"
