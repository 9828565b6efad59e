"""Which events a thread-stream subscription receives: channels, namespace prefixes, depth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph_sdk.stream.subscription import matches_subscription

from keel.errors import BadRequest
from keel.storage.tx import Row

from .events import PREFIX

CHANNELS = frozenset(
    {"values", "updates", "messages", "tools", "lifecycle", "input", "tasks", "checkpoints"}
    | {"custom"}
)


def valid_channel(name: Any) -> bool:
    return isinstance(name, str) and (
        name in CHANNELS or (name.startswith("custom:") and len(name) > len("custom:"))
    )


@dataclass(frozen=True)
class Subscription:
    channels: list[str]
    namespaces: list[list[str]] | None = None
    depth: int | None = None

    def wants(self, event: Row) -> bool:
        definition: Any = {"channels": self.channels}
        if self.namespaces is not None:
            definition["namespaces"] = self.namespaces
        if self.depth is not None:
            definition["depth"] = self.depth
        return matches_subscription(event, definition)  # type: ignore[arg-type]

    def keeps(self, name: str) -> bool:
        """Whether a stored event named `name` can become an event this subscription wants:
        a cheap test on the name alone, so a bounded feed holds only what may be sent (a
        `lifecycle` subscription's feed is not filled by a burst of `custom` events)."""
        if not name.startswith(PREFIX):
            return True  # a runs-API run's events, end markers: decided later
        method = name[len(PREFIX) :]
        channel = "input" if method == "input.requested" else method
        return any(c == channel or c.startswith(f"{channel}:") for c in self.channels)

    def view(self) -> Row:
        out: Row = {"channels": self.channels}
        if self.namespaces is not None:
            out["namespaces"] = self.namespaces
        if self.depth is not None:
            out["depth"] = self.depth
        return out


def parse_subscription(body: Any) -> Subscription:
    """A subscription from `{channels, namespaces?, depth?}`; BadRequest when malformed."""
    if not isinstance(body, dict):
        raise BadRequest("expected an object with 'channels'")
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels:
        raise BadRequest("channels: expected a non-empty list of channel names")
    bad = [c for c in channels if not valid_channel(c)]
    if bad:
        raise BadRequest(f"channels: unknown channel(s) {bad!r}; expected {sorted(CHANNELS)}")
    namespaces = body.get("namespaces")
    if namespaces is not None and not (
        isinstance(namespaces, list)
        and all(isinstance(n, list) and all(isinstance(s, str) for s in n) for n in namespaces)
    ):
        raise BadRequest("namespaces: expected a list of namespaces (lists of strings)")
    depth = body.get("depth")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise BadRequest("depth: expected a non-negative integer")
    return Subscription(list(channels), namespaces, depth)


def parse_since(body: Row) -> int | None:
    since = body.get("since")
    if since is None:
        return None
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise BadRequest("since: expected a non-negative integer seq")
    return since
