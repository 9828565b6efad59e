"""The `store` section: semantic search (`index`) and TTL of long-term memory."""

from __future__ import annotations

import dataclasses
from typing import Any

from keel.errors import ConfigError
from keel.settings.fields import number


@dataclasses.dataclass(frozen=True)
class IndexSettings:
    """`store.index`: what semantic search embeds. `embed` None is Keel's embedded model."""

    dims: int = 256
    embed: str | None = None
    fields: tuple[str, ...] = ("$",)


@dataclasses.dataclass(frozen=True)
class TTLSettings:
    """`store.ttl`: minutes; `default_ttl` None keeps items until deleted."""

    default_ttl: float | None = None
    refresh_on_read: bool = True
    sweep_interval_minutes: float = 60.0


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    """`store`: semantic search on by default (embedded model); `index` None turns it off."""

    index: IndexSettings | None = IndexSettings()
    ttl: TTLSettings = TTLSettings()




def _index(raw: Any) -> IndexSettings | None:
    if raw is None or raw is False:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("'store.index' must be an object, or null to turn semantic search off")
    bad = set(raw) - {"dims", "embed", "fields"}
    if bad:
        raise ConfigError(f"store.index keys not supported: {sorted(bad)}")
    dims = raw.get("dims", 256)
    if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
        raise ConfigError(f"store.index.dims must be a positive integer, got {dims!r}")
    embed = raw.get("embed")
    if embed is not None and (not isinstance(embed, str) or not embed.strip()):
        raise ConfigError("store.index.embed must be 'provider:model' or 'path.py:function'")
    fields = raw.get("fields", ["$"])
    if (
        not isinstance(fields, list)
        or not fields
        or not all(isinstance(f, str) and f for f in fields)
    ):
        raise ConfigError("store.index.fields must be a non-empty list of field paths")
    return IndexSettings(dims=dims, embed=embed, fields=tuple(fields))


def _ttl(raw: Any) -> TTLSettings:
    if raw is None:
        return TTLSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'store.ttl' must be an object")
    bad = set(raw) - {"default_ttl", "refresh_on_read", "sweep_interval_minutes"}
    if bad:
        raise ConfigError(f"store.ttl keys not supported: {sorted(bad)}")
    default = raw.get("default_ttl")
    refresh = raw.get("refresh_on_read", True)
    if not isinstance(refresh, bool):
        raise ConfigError("store.ttl.refresh_on_read must be true or false")
    sweep = raw.get("sweep_interval_minutes", 60)
    return TTLSettings(
        default_ttl=None if default is None else number(default, "store.ttl.default_ttl"),
        refresh_on_read=refresh,
        sweep_interval_minutes=number(sweep, "store.ttl.sweep_interval_minutes"),
    )


def store_settings(raw: Any) -> StoreSettings:
    """The `store` section of langgraph.json (absent: semantic search with Keel's model)."""
    if raw is None:
        return StoreSettings()
    if not isinstance(raw, dict):
        raise ConfigError("'store' must be an object")
    bad = set(raw) - {"index", "ttl"}
    if bad:
        raise ConfigError(f"store keys not supported: {sorted(bad)}")
    index = _index(raw["index"]) if "index" in raw else IndexSettings()
    return StoreSettings(index=index, ttl=_ttl(raw.get("ttl")))
