"""A graph factory taking a `ServerRuntime`: its node answers who the runtime's user is and what
the run's config says of the user (`langgraph_auth_*`). With `KEEL_TEST_FACTORY_LOG` set, every
build appends `<access_context> <identity>` to that file (state reads build it too)."""

from __future__ import annotations

import os
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph_sdk.runtime import ServerRuntime


class State(TypedDict, total=False):
    seen: dict[str, Any]


def _identity(user: Any) -> str | None:
    return None if user is None else str(user.identity)


def make_graph(runtime: ServerRuntime[Any]) -> Any:
    identity = _identity(runtime.user)
    log = os.environ.get("KEEL_TEST_FACTORY_LOG")
    if log:
        with open(log, "a") as out:
            out.write(f"{runtime.access_context} {identity}\n")

    def echo(state: State, config: RunnableConfig) -> State:
        configurable = config.get("configurable") or {}
        user = configurable.get("langgraph_auth_user")
        return {
            "seen": {
                "runtime_user": identity,
                "user_id": configurable.get("langgraph_auth_user_id"),
                "permissions": configurable.get("langgraph_auth_permissions"),
                "user": dict(user) if user is not None else None,
            }
        }

    builder = StateGraph(State)
    builder.add_node("echo", echo)
    builder.add_edge(START, "echo")
    return builder.compile()
