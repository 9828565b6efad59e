"""Keel's `background` section: the priority lanes' reserved share of worker slots and the
sleep-time triggers that enqueue background runs (keel.background.triggers). See
docs/sleep-time.md for the reference of every key."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from keel.cron_schedule import CronSchedule
from keel.errors import ConfigError, InvalidInput
from keel.settings.fields import positive_int, section

KINDS = ("on_idle", "every_n_runs", "schedule")
INPUTS = ("messages", "state", "thread")
TRIGGER_KEYS = {
    *KINDS,
    "graph",
    "watch",
    "input",
    "max_messages",
    "max_runs_per_thread_per_day",
    "max_seconds",
    "select",
}
DEFAULT_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Selection:
    """What a `schedule` trigger fires over: threads whose metadata contains `metadata`, or
    the store namespaces starting with `prefix` (at most `limit` of them per firing)."""

    metadata: dict[str, Any] | None = None
    prefix: tuple[str, ...] | None = None
    limit: int = 100


@dataclasses.dataclass(frozen=True)
class TriggerSpec:
    """One trigger: when it fires (`kind` with its `on_idle` seconds, `every_n_runs` count or
    cron `schedule`), the graph it runs, the threads it watches (their graph ids; empty: all),
    what its run receives, and its budget."""

    name: str
    kind: str
    graph: str
    watch: tuple[str, ...] = ()
    idle_seconds: float = 0.0
    every_n_runs: int = 0
    schedule: str = ""
    select: Selection = Selection()
    input: str = "messages"
    max_messages: int = 20
    max_runs_per_day: int | None = None
    max_seconds: float | None = None

    def watches(self, graph_id: str | None) -> bool:
        return not self.watch or graph_id in self.watch


@dataclasses.dataclass(frozen=True)
class BackgroundSettings:
    """`reserved_interactive_share`: the share of a process's worker slots only interactive
    runs may take (rounded up, leaving at least one slot for background runs)."""

    reserved_interactive_share: float = DEFAULT_SHARE
    triggers: tuple[TriggerSpec, ...] = ()

    def trigger(self, name: str) -> TriggerSpec | None:
        return next((t for t in self.triggers if t.name == name), None)

    def background_slots(self, workers: int) -> int:
        """How many runs of the background lane this process executes at once at most."""
        if workers <= 1:
            return workers
        reserved = math.ceil(workers * self.reserved_interactive_share - 1e-9)
        return max(1, workers - reserved)


def background_settings(raw: Any) -> BackgroundSettings:
    if raw is None:
        return BackgroundSettings()
    raw = section(raw, "background")
    bad = sorted(set(raw) - {"reserved_interactive_share", "triggers"})
    if bad:
        raise ConfigError(f"background keys not supported: {bad}")
    share = raw.get("reserved_interactive_share", DEFAULT_SHARE)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ConfigError(
            f"background.reserved_interactive_share must be a number from 0 to 1, got {share!r}"
        )
    triggers = section(raw.get("triggers") or {}, "background.triggers")
    specs = tuple(_trigger(str(name), spec) for name, spec in triggers.items())
    return BackgroundSettings(float(share), specs)


def _trigger(name: str, raw: Any) -> TriggerSpec:
    key = f"background.triggers.{name}"
    raw = section(raw, key)
    bad = sorted(set(raw) - TRIGGER_KEYS)
    if bad:
        raise ConfigError(f"{key}: keys not supported: {bad} (supported: {sorted(TRIGGER_KEYS)})")
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"{key}: give exactly one of {list(KINDS)}")
    graph = raw.get("graph")
    if not isinstance(graph, str) or not graph:
        raise ConfigError(f"{key}.graph must name the graph (or assistant) the trigger runs")
    watch = raw.get("watch", [])
    if not isinstance(watch, list) or not all(isinstance(g, str) for g in watch):
        raise ConfigError(f"{key}.watch must be a list of graph ids")
    mode = raw.get("input", "messages")
    if mode not in INPUTS:
        raise ConfigError(f"{key}.input must be one of {list(INPUTS)}, got {mode!r}")
    return TriggerSpec(
        name=name,
        kind=kinds[0],
        graph=graph,
        watch=tuple(watch),
        input=mode,
        max_messages=positive_int(raw.get("max_messages", 20), f"{key}.max_messages"),
        max_runs_per_day=_optional_count(raw, "max_runs_per_thread_per_day", key),
        max_seconds=_optional_seconds(raw.get("max_seconds"), f"{key}.max_seconds"),
        **_when(kinds[0], raw, key),
    )


def _when(kind: str, raw: dict[str, Any], key: str) -> dict[str, Any]:
    """The kind-specific fields of a trigger."""
    value = raw[kind]
    if kind == "on_idle":
        return {"idle_seconds": _seconds(value, f"{key}.on_idle")}
    if kind == "every_n_runs":
        return {"every_n_runs": positive_int(value, f"{key}.every_n_runs")}
    try:
        CronSchedule.parse(value)
    except InvalidInput as exc:
        raise ConfigError(f"{key}.schedule: {exc.detail}") from None
    return {"schedule": value, "select": _selection(raw.get("select"), f"{key}.select")}


def _selection(raw: Any, key: str) -> Selection:
    raw = section(raw, key)
    if ("threads" in raw) == ("namespaces" in raw):
        raise ConfigError(f"{key}: give exactly one of 'threads' or 'namespaces'")
    limit = positive_int(raw.get("limit", 100), f"{key}.limit")
    if "threads" in raw:
        meta = section(raw["threads"], f"{key}.threads").get("metadata") or {}
        return Selection(metadata=section(meta, f"{key}.threads.metadata"), limit=limit)
    prefix = section(raw["namespaces"], f"{key}.namespaces").get("prefix") or []
    if not isinstance(prefix, list) or not all(isinstance(p, str) for p in prefix):
        raise ConfigError(f"{key}.namespaces.prefix must be a list of strings")
    return Selection(prefix=tuple(prefix), limit=limit)






def _optional_count(raw: dict[str, Any], name: str, key: str) -> int | None:
    value = raw.get(name)
    return None if value is None else positive_int(value, f"{key}.{name}")


def _seconds(raw: Any, key: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < 1e9:
        raise ConfigError(f"{key} must be a positive number of seconds, got {raw!r}")
    return float(raw)


def _optional_seconds(raw: Any, key: str) -> float | None:
    return None if raw is None else _seconds(raw, key)
