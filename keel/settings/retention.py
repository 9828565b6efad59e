"""What Keel keeps and for how long: the reference's `checkpointer.ttl` (thread TTL) and Keel's
own `retention` section (event logs, stateless runs). Durations are minutes (fractions allowed)."""

from __future__ import annotations

import dataclasses
from typing import Any

from keel.errors import ConfigError
from keel.settings.fields import positive_int, section

STRATEGIES = ("delete", "keep_latest")
# A thread's TTL is at most this many minutes (about 190 years): beyond, dates overflow.
MAX_TTL_MINUTES = 1e8


@dataclasses.dataclass(frozen=True)
class ThreadTtl:
    """`checkpointer.ttl`: what happens to a thread `default_ttl` minutes after its last change
    (`default_ttl` None: only threads created with their own `ttl` expire)."""

    strategy: str = "delete"
    default_ttl: float | None = None
    sweep_interval_minutes: float = 5.0
    sweep_limit: int = 10_000

    def for_new_thread(self) -> dict[str, Any] | None:
        """The `ttl` stamped on a thread created without one."""
        if self.default_ttl is None:
            return None
        return {"ttl": self.default_ttl, "strategy": self.strategy}


@dataclasses.dataclass(frozen=True)
class CheckpointerSettings:
    """`checkpointer`: only `ttl` is supported (Keel's checkpointer is built in)."""

    ttl: ThreadTtl = ThreadTtl()


@dataclasses.dataclass(frozen=True)
class RetentionSettings:
    """`retention` (Keel's): how long a finished run's event log (for replay after a disconnect)
    and a finished stateless run stay readable; thread-stream events are kept briefly."""

    run_events_minutes: float = 24 * 60.0
    stateless_runs_minutes: float = 10.0
    thread_events_minutes: float = 1.0
    sweep_interval_minutes: float = 5.0
    sweep_limit: int = 1000


def minutes(raw: Any, key: str, *, positive: bool = False) -> float:
    """A number of minutes from the config, or a ConfigError naming `key`."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != raw:
        raise ConfigError(f"{key} must be a number of minutes, got {raw!r}")
    if raw < 0 or (positive and raw == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{key} must be {bound} minutes, got {raw!r}")
    if raw > MAX_TTL_MINUTES:
        raise ConfigError(f"{key} must be at most {MAX_TTL_MINUTES:g} minutes, got {raw!r}")
    return float(raw)






def thread_ttl(raw: Any) -> ThreadTtl:
    """`checkpointer.ttl`."""
    if raw is None:
        return ThreadTtl()
    allowed = {"strategy", "default_ttl", "sweep_interval_minutes", "sweep_limit"}
    raw = section(raw, "checkpointer.ttl", allowed)
    strategy = raw.get("strategy", "delete")
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"checkpointer.ttl.strategy must be one of {list(STRATEGIES)}, got {strategy!r}"
        )
    default = raw.get("default_ttl")
    key = "checkpointer.ttl."
    return ThreadTtl(
        strategy=strategy,
        default_ttl=None if default is None else minutes(default, key + "default_ttl"),
        sweep_interval_minutes=minutes(
            raw.get("sweep_interval_minutes", 5.0), key + "sweep_interval_minutes", positive=True
        ),
        sweep_limit=positive_int(raw.get("sweep_limit", 10_000), key + "sweep_limit"),
    )


def checkpointer_settings(raw: Any) -> CheckpointerSettings:
    """The `checkpointer` section: `ttl`; a custom saver (`path`) or `serde` is refused."""
    if raw is None:
        return CheckpointerSettings()
    if isinstance(raw, dict) and "path" in raw:
        raise ConfigError(
            "checkpointer.path is not supported: Keel stores checkpoints in its own database "
            "(use --database to choose it)"
        )
    raw = section(raw, "checkpointer", {"ttl"})
    return CheckpointerSettings(ttl=thread_ttl(raw.get("ttl")))


def retention_settings(raw: Any) -> RetentionSettings:
    """Keel's `retention` section."""
    if raw is None:
        return RetentionSettings()
    defaults = RetentionSettings()
    fields = {f.name for f in dataclasses.fields(RetentionSettings)}
    raw = section(raw, "retention", fields)
    values: dict[str, Any] = {}
    for name in fields:
        value = raw.get(name, getattr(defaults, name))
        key = f"retention.{name}"
        if name == "sweep_limit":
            values[name] = positive_int(value, key)
        else:
            values[name] = minutes(value, key, positive=name == "sweep_interval_minutes")
    return RetentionSettings(**values)
