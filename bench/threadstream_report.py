"""The Markdown report of `python -m bench threadstream` (bench/threadstream.py)."""

from __future__ import annotations

from typing import Any

from bench.threadstream_clients import TRANSPORTS


def _side(result: dict[str, Any], server: str, part: str, transport: str) -> dict[str, Any]:
    side = result[server]
    if "na" in side:
        return {"na": side["na"]}
    return dict(side[part][transport])


def _pair(figures: dict[str, Any], key: str) -> str:
    if "na" in figures:
        return "n/a"
    return f"{figures[f'{key}_p50_ms']} / {figures[f'{key}_p95_ms']}"


def _ratio(keel: dict[str, Any], ref: dict[str, Any], key: str) -> str:
    if "na" in keel or "na" in ref or not ref.get(key):
        return "—"
    ratio = keel[key] / ref[key]
    return f"{ratio:.3f}x" if ratio < 0.1 else f"{ratio:.2f}x"


def _latency_rows(result: dict[str, Any]) -> list[str]:
    rows = [
        "| transport | Keel: first event p50 / p95 (ms) | reference | Keel / ref (p50) "
        "| Keel: first `values` p50 / p95 (ms) | reference | Keel / ref (p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in TRANSPORTS:
        k = _side(result, "keel", "latency", t)
        r = _side(result, "reference", "latency", t)
        rows.append(
            f"| {t} | {_pair(k, 'first_event')} | {_pair(r, 'first_event')} "
            f"| {_ratio(k, r, 'first_event_p50_ms')} | {_pair(k, 'first_values')} "
            f"| {_pair(r, 'first_values')} | {_ratio(k, r, 'first_values_p50_ms')} |"
        )
    return rows


def _rate(figures: dict[str, Any]) -> str:
    if "na" in figures:
        return "n/a"
    gaps = f", {figures['resume_gaps']} resume_gap" if figures["resume_gaps"] else ""
    return f"{figures['events_per_s']:,} ({figures['last_event_s']} s{gaps})"


def _throughput_rows(result: dict[str, Any]) -> list[str]:
    rows = [
        "| transport | Keel: events/s (last event at) | reference | Keel / reference |",
        "|---|---|---|---|",
    ]
    for t in TRANSPORTS:
        k = _side(result, "keel", "throughput", t)
        r = _side(result, "reference", "throughput", t)
        rows.append(f"| {t} | {_rate(k)} | {_rate(r)} | {_ratio(k, r, 'events_per_s')} |")
    return rows


def _notes(result: dict[str, Any]) -> list[str]:
    """Every n/a with its reason, as measured."""
    notes = []
    for server, name in (("keel", "Keel"), ("reference", "reference")):
        side = result[server]
        if "na" in side:
            notes.append(f"- {name}: n/a: {side['na']}")
            continue
        for part in ("latency", "throughput"):
            for t in TRANSPORTS:
                if "na" in side[part][t]:
                    notes.append(f"- {name}, {part}, {t}: n/a: {side[part][t]['na']}")
    return notes


def _header(result: dict[str, Any]) -> list[str]:
    ref = result["reference"].get("versions", {})
    ref_text = ", ".join(f"{k} {v}" for k, v in ref.items()) or "not run"
    return [
        "# The v3 thread stream next to runs.stream (`python -m bench threadstream`)",
        "",
        "Keel on SQLite (`keel serve`), then the reference (`langgraph dev`: "
        f"{ref_text}), one at a time, both serving bench/graphs.py. Clients: langgraph-sdk "
        f"{result['langgraph_sdk']}: `client.threads.stream(transport='sse'|'websocket')` "
        "(`run.start`, then `thread.subscribe`) and `client.runs.stream`, each run on a new "
        "thread the client names. Clock: from sending the start to the event received.",
        "",
    ]


def report(result: dict[str, Any]) -> str:
    notes = _notes(result)
    return "\n".join(
        [
            *_header(result),
            f"## First-event latency: the 3-node graph, {result['runs']} runs per transport",
            "",
            "Interleaved (the order rotating), after 3 warm-up rounds. First event: v3 "
            "lifecycle `running`, runs.stream `metadata`. First `values`: the graph's input "
            "state (v3 subscription `values`; runs.stream `stream_mode=values`).",
            "",
            *_latency_rows(result),
            "",
            f"## Events/s: one run emitting {result['events']:,} custom events",
            "",
            f"Median of {result['event_runs']} runs per transport, interleaved; custom events "
            "received / seconds from the start to the last one (v3 subscription `custom`; "
            "runs.stream `stream_mode=custom`). `resume_gap`: times the server dropped a "
            "WebSocket as too slow and the SDK resumed it with `since` (nothing lost).",
            "",
            *_throughput_rows(result),
            "",
            *(["## n/a", "", *notes, ""] if notes else []),
        ]
    )
