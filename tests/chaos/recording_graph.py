"""A six-step graph whose every node execution is recorded in a side SQLite table.

The chaos tests kill the server while runs of this graph are in flight, then read the side table
(`$KEEL_CHAOS_SIDE_DB`) to learn which steps ran in which attempt. Each node commits its row
*before* it sleeps and returns, like a real side effect would, so a kill can land between the
effect and the checkpoint that records the step.
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
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS executions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " run_id TEXT NOT NULL,"
    " step TEXT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " pid INTEGER NOT NULL,"
    " at REAL NOT NULL)"
)


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(SCHEMA)
    return conn


def record(run_id: str, step: str, attempt: int) -> None:
    conn = connect(os.environ[SIDE_DB_ENV])
    try:
        conn.execute(
            "INSERT INTO executions (run_id, step, attempt, pid, at) VALUES (?,?,?,?,?)",
            (run_id, step, attempt, os.getpid(), time.time()),
        )
    finally:
        conn.close()


def make_node(step: str) -> Any:
    async def node(state: State, config: RunnableConfig) -> State:
        run_id = str(config["configurable"]["run_id"])
        attempt = int((config.get("metadata") or {})["run_attempt"])
        record(run_id, step, attempt)  # the side effect, committed before the step ends
        await asyncio.sleep(random.uniform(0.05, 0.15))
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
