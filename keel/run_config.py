"""What a run is made of: its config, context, kwargs and metadata (assistant < thread <
request), and who creates it: the user it carries in `configurable.langgraph_auth_*` and the
threads and assistants that user may touch (`RunAccess`)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from keel.auth.scope import EVERYTHING, Scope
from keel.auth.user import AUTH_USER, User
from keel.errors import BadRequest
from keel.storage.tx import Row

# Marks a run whose `configurable` mirrors the request's `context` (see run_config).
CONTEXT_MIRRORED = "__context_provided__"
# The user a run carries, as the reference names it; only the server writes these keys.
AUTH_USER_ID = "langgraph_auth_user_id"
AUTH_PERMISSIONS = "langgraph_auth_permissions"
AUTH_KEYS = (AUTH_USER, AUTH_USER_ID, AUTH_PERMISSIONS)


@dataclasses.dataclass(frozen=True)
class RunAccess:
    """Who creates a run and what they may touch. `user`: carried by the run (None without
    auth). `threads`: the `threads.create_run` scope (the thread must be in it; threads and runs
    created are stamped with its org). `assistants`: the `assistants.read` scope a non-system
    assistant must be in. (Quotas admit the run in its transaction: RunService.admit.)"""

    user: User | None = None
    threads: Scope = EVERYTHING
    assistants: Scope = EVERYTHING

    @classmethod
    def of(cls, user: User | None) -> RunAccess:
        """A trusted creator acting for `user` (a cron firing): no scope, the user's org."""
        return cls(user, Scope(org=user.org) if user is not None else EVERYTHING)


OPEN = RunAccess()


def without_auth_keys(body: Row) -> Row:
    """`body` without the `langgraph_auth_*` keys a client put in its `config.configurable` or
    `context`: the server's own values replace them (the reference drops them too)."""
    out = dict(body)
    config = out.get("config")
    if isinstance(config, dict) and isinstance(config.get("configurable"), dict):
        configurable = _dropped(config["configurable"])
        out["config"] = {**config, "configurable": configurable}
    if isinstance(out.get("context"), dict):
        out["context"] = _dropped(out["context"])
    return out


def _dropped(values: Row) -> Row:
    return {k: v for k, v in values.items() if k not in AUTH_KEYS}


def auth_configurable(user: User | None) -> Row:
    """The `configurable` keys that carry `user` (as the reference: a null user, an empty id
    and no permissions without auth)."""
    if user is None:
        return {AUTH_USER: None, AUTH_USER_ID: "", AUTH_PERMISSIONS: []}
    return {
        AUTH_USER: user.to_dict(),
        AUTH_USER_ID: user.identity,
        AUTH_PERMISSIONS: list(user.permissions),
    }


def carried_user(configurable: Row) -> User | None:
    """The user a run's `configurable` carries (None without auth). The worker hands graphs
    the `User` in place of its stored dict: items and attributes, as the reference's user."""
    data = configurable.get(AUTH_USER)
    if isinstance(data, User):
        return data
    if not isinstance(data, Mapping) or "identity" not in data:
        return None
    user = User.from_dict(data)
    configurable[AUTH_USER] = user
    return user


def stored_user(config: Row | None) -> User | None:
    """The user a stored run payload (a cron's) carries in its `config.configurable`."""
    configurable = (config or {}).get("configurable")
    return carried_user(dict(configurable)) if isinstance(configurable, dict) else None


def deep_merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_config(
    body: Row,
    assistant: Row,
    thread: Row,
    ids: tuple[str, str],
    headers: Row | None = None,
    user: User | None = None,
) -> tuple[Row, Row]:
    """The graph's config (assistant < thread < request) and the checkpoint to start from;
    `ids` are the run's thread and run ids, `user` who creates it."""
    tid, run_id = ids
    body_config = body.get("config") or {}
    if (body_config.get("configurable") or {}) and body.get("context"):
        raise BadRequest("Cannot specify both configurable and context. Prefer context.")
    # Of the thread's config (see keel.threads.run_thread_config) only `configurable` carries over.
    thread_conf = {"configurable": (thread.get("config") or {}).get("configurable") or {}}
    config = deep_merge(deep_merge(assistant["config"], thread_conf), body_config)
    checkpoint = dict(body.get("checkpoint") or {})
    checkpoint.pop("thread_id", None)
    if body.get("checkpoint_id"):
        checkpoint["checkpoint_id"] = body["checkpoint_id"]
    configurable = config.setdefault("configurable", {})
    if body.get("context"):
        # As the reference: the request's context is also the run's `configurable`, for graphs
        # that read it there; the worker drops what the context schema drops (unmirror_context).
        configurable.update(copy.deepcopy(body["context"]), **{CONTEXT_MIRRORED: True})
    configurable.update(checkpoint)
    configurable.update(headers or {})  # http.configurable_headers: over the body's values
    _stamp_user(configurable, user)
    configurable.update(
        run_id=run_id,
        thread_id=tid,
        graph_id=assistant["graph_id"],
        assistant_id=assistant["assistant_id"],
    )
    config.setdefault("metadata", {}).update(run_metadata(body, assistant, thread))
    return config, checkpoint


def _stamp_user(configurable: Row, user: User | None) -> None:
    """The creator's user over whatever the request said; `user_id` too, as the reference,
    unless the request, the thread or the assistant gives one."""
    configurable.update(auth_configurable(user))
    if user is not None and not configurable.get("user_id"):
        configurable["user_id"] = user.identity


def create_run_value(
    body: Row, ids: tuple[str | None, str], assistant_id: str, user: User | None
) -> Row:
    """The `threads.create_run` value `@auth.on` handlers see (the reference's `RunsCreate`);
    `ids`: the thread (None for a stateless run) and the new run. A handler's changes to its
    `metadata` become the run's (the caller puts them back into `body`)."""
    thread_id, run_id = ids
    strategy = body.get("multitask_strategy") or "enqueue"
    config = copy.deepcopy(body.get("config") or {})
    config.setdefault("configurable", {}).update(auth_configurable(user))
    kwargs = run_kwargs(body, config, copy.deepcopy(body.get("context") or {}), {})
    kwargs.pop("checkpoint")
    kwargs.pop("on_disconnect")
    kwargs["temporary"] = thread_id is None
    return {
        "thread_id": thread_id,
        "assistant_id": assistant_id,
        "run_id": run_id,
        "status": "pending",
        "metadata": dict(body.get("metadata") or {}),
        "prevent_insert_if_inflight": strategy == "reject",
        "multitask_strategy": strategy,
        "if_not_exists": body.get("if_not_exists") or "reject",
        "after_seconds": body.get("after_seconds") or 0,
        "kwargs": kwargs,
    }


def run_context(body: Row, assistant: Row) -> Row:
    """Runtime context: the assistant's, updated by the request's context or, when it sends
    none, by its `configurable`."""
    configurable = (body.get("config") or {}).get("configurable")
    return deep_merge(assistant.get("context") or {}, body.get("context") or configurable)


def unmirror_context(configurable: Row, context: Any, kept: Any) -> None:
    """Remove from a run's `configurable` the context keys the graph's context schema dropped
    (`context` as requested, `kept` as filtered), where it still holds the mirrored value."""
    if not isinstance(context, dict):
        return
    dropped = set(context) - set(kept if isinstance(kept, dict) else ())
    for key in dropped:
        if key in configurable and configurable[key] == context[key]:
            del configurable[key]


def run_kwargs(body: Row, config: Row, context: Row, checkpoint: Row) -> Row:
    """Everything the worker needs to execute the run, as stored on the run row."""
    return {
        "input": body.get("input"),
        "command": body.get("command"),
        "config": config,
        "context": context,
        "stream_mode": body.get("stream_mode") or ["values"],
        "interrupt_before": body.get("interrupt_before"),
        "interrupt_after": body.get("interrupt_after"),
        "webhook": body.get("webhook"),
        "feedback_keys": None,
        "temporary": False,
        "subgraphs": bool(body.get("stream_subgraphs")),
        "resumable": bool(body.get("stream_resumable")),
        "checkpoint_during": body.get("checkpoint_during", True),
        "durability": body.get("durability") or "async",
        "on_disconnect": body.get("on_disconnect") or "continue",
        "checkpoint": checkpoint or None,
    }


def run_metadata(body: Row, assistant: Row, thread: Row) -> Row:
    """A run's metadata as the reference keeps it: the assistant's, the thread's, the request's."""
    return {
        **assistant["metadata"],
        **thread["metadata"],
        **((body.get("config") or {}).get("metadata") or {}),
        **(body.get("metadata") or {}),
        "assistant_id": assistant["assistant_id"],
    }


MAX_SECONDS = "keel_max_seconds"  # a private kwarg: this run's own wall-time limit (triggers)


def run_timeout(kwargs: Row, default: float) -> float:
    """A run's wall-time limit: the process's, or the run's own when it is shorter."""
    own = kwargs.get(MAX_SECONDS)
    return min(default, float(own)) if own else default
