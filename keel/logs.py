"""Logging set-up: text (default) or `KEEL_LOG_FORMAT=json`, one JSON object per line with
`ts`, `level`, `logger`, `message`, and `run_id`, `thread_id`, `trace_id` on every line logged
while a run executes (the worker sets them for the run's task with `run_context`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

FORMAT_ENV = "KEEL_LOG_FORMAT"
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
# The ids of the run the current task executes (a contextvar: tasks the graph starts inherit it).
_RUN: ContextVar[Mapping[str, str | None] | None] = ContextVar("keel_log_run", default=None)


def json_logs(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get(FORMAT_ENV, "").strip().lower() == "json"


@contextmanager
def run_context(run: Mapping[str, Any], trace_id: str | None) -> Iterator[None]:
    """Log lines of the block (and of the tasks it starts) carry the run's ids."""
    ids = {"run_id": run["run_id"], "thread_id": run["thread_id"], "trace_id": trace_id}
    token = _RUN.set(ids)
    try:
        yield
    finally:
        _RUN.reset(token)


def current_run() -> Mapping[str, str | None] | None:
    return _RUN.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks in `exc_info`)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = _RUN.get()
        if ids is not None:
            line.update(ids)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: int = logging.INFO) -> bool:
    """The root logger's handler in the configured format; True when it is JSON (then uvicorn's
    own loggers must propagate to it rather than get their own handlers)."""
    if not json_logs():
        logging.basicConfig(level=level, format=TEXT_FORMAT)
        return False
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    logging.captureWarnings(True)  # Python warnings as JSON lines too
    return True
