"""JSON encoding for everything that crosses the wire or lands in Keel's own tables."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, (uuid.UUID, datetime)):
        return str(obj)
    as_dict = getattr(obj, "_asdict", None)
    if callable(as_dict):
        return as_dict()
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return to_json()
    return repr(obj)


def dumps(obj: Any) -> bytes:
    """Compact JSON (never contains a raw newline), tolerant of LangChain and LangGraph objects."""
    return orjson.dumps(obj, default=_default, option=_OPTS)


def loads(data: bytes | str | None) -> Any:
    if data is None:
        return None
    return orjson.loads(data)


def jsonable(obj: Any) -> Any:
    """Round-trip through JSON so that the result holds only plain JSON types."""
    return orjson.loads(dumps(obj))
