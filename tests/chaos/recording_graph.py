"""A six-step graph whose every node execution is recorded in a side SQLite table.

The chaos tests kill the server while runs of this graph are in flight, then read the side table
(`$KEEL_CHAOS_SIDE_DB`) to learn which steps ran in which attempt, in which process and when. Each
node commits its row (with its start time) *before* it sleeps and returns, like a real side effect
would, so a kill can land between the effect and the checkpoint that records the step; it then
records its end time as it returns or is cancelled (a killed process never records one).

`$KEEL_CHAOS_STEP_SECONDS` ("low,high") sets how long a step sleeps (default 0.05,0.15).
"""

from __future__ import annotations

import asyncio
import operator
import os
import random
import sqlite3
import time
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

STEPS = ("step1", "step2", "step3", "step4", "step5", "step6")
SIDE_DB_ENV = "KEEL_CHAOS_SIDE_DB"
STEP_SECONDS_ENV = "KEEL_CHAOS_STEP_SECONDS"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS executions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " run_id TEXT NOT NULL,"
    " step TEXT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " pid INTEGER NOT NULL,"
    " at REAL NOT NULL,"  # when the step started (epoch seconds)
    " ended REAL)"  # when it returned or was cancelled; NULL if its process died in it
)


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: commits survive kill -9
    conn.execute(SCHEMA)
    return conn


def record(run_id: str, step: str, attempt: int) -> int:
    """Record a step's start; returns the row's seq."""
    conn = connect(os.environ[SIDE_DB_ENV])
    try:
        cur = conn.execute(
            "INSERT INTO executions (run_id, step, attempt, pid, at) VALUES (?,?,?,?,?)",
            (run_id, step, attempt, os.getpid(), time.time()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid
    finally:
        conn.close()


def record_end(seq: int) -> None:
    conn = connect(os.environ[SIDE_DB_ENV])
    try:
        conn.execute("UPDATE executions SET ended=? WHERE seq=?", (time.time(), seq))
    finally:
        conn.close()


def step_seconds() -> tuple[float, float]:
    low, high = os.environ.get(STEP_SECONDS_ENV, "0.05,0.15").split(",")
    return float(low), float(high)


def make_node(step: str) -> Any:
    async def node(state: State, config: RunnableConfig) -> State:
        run_id = str(config["configurable"]["run_id"])
        attempt = int((config.get("metadata") or {})["run_attempt"])
        seq = record(run_id, step, attempt)  # the side effect, committed before the step ends
        try:
            await asyncio.sleep(random.uniform(*step_seconds()))
        finally:  # also when cancelled (e.g. a worker that lost its lease stops the run)
            record_end(seq)
        return {"steps": [step]}

    node.__name__ = step
    return node


builder = StateGraph(State)
previous = START
for name in STEPS:
    builder.add_node(name, make_node(name))
    builder.add_edge(previous, name)
    previous = name
builder.add_edge(previous, END)
graph = builder.compile(name="recording")
