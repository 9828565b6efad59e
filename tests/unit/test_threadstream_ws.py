"""The bounds of a thread-stream subscriber: its feed queue keeps a gapless prefix of at most
`bound` events, then signals the overflow once drained (a walk restarts from the logs, a plain
reader gets FeedOverflow); the WebSocket's bound is a setting."""

from __future__ import annotations

import pytest

from keel.errors import ConfigError, Forbidden, InvalidInput, NotFound, Unavailable
from keel.settings.http import DEFAULT_WS_SEND_QUEUE, _http
from keel.streams import FeedOverflow, FeedQueue
from keel.threadstream.channels import parse_subscription
from keel.threadstream.commands import code_of


def _item(n: int) -> tuple[str, str, bytes]:
    return (f"run.{n}", "custom", b"{}")


async def test_a_bounded_feed_keeps_a_gapless_prefix_then_overflows() -> None:
    feed = FeedQueue(bound=3)
    for n in range(1, 6):
        feed.put_nowait(_item(n))
    assert feed.qsize() == 3 and feed.overflowed  # memory stays at the bound
    assert await feed.get() == _item(1)
    feed.put_nowait(_item(6))  # room again, but after a gap: dropped too
    assert [await feed.get(), await feed.get()] == [_item(2), _item(3)]
    with pytest.raises(FeedOverflow):
        await feed.get()


async def test_a_walk_restarts_once_the_prefix_is_drained() -> None:
    feed = FeedQueue(bound=2)
    for n in range(1, 5):
        feed.put_nowait(_item(n))
    assert not feed.restart()  # the prefix first
    assert [await feed.get(), await feed.get()] == [_item(1), _item(2)]
    assert feed.restart() and not feed.restart()  # once; the feed takes events again
    feed.put_nowait(_item(5))
    assert await feed.get() == _item(5)


async def test_the_default_bound_holds_10000_events() -> None:
    feed = FeedQueue()
    for n in range(10_001):
        feed.put_nowait(_item(n))
    assert feed.qsize() == 10_000 and feed.overflowed


def test_the_bound_is_a_setting() -> None:
    assert _http(None).ws_send_queue == DEFAULT_WS_SEND_QUEUE == 10_000
    assert _http({"ws_send_queue": 64}).ws_send_queue == 64
    for bad in (0, -1, "64", True):
        with pytest.raises(ConfigError):
            _http({"ws_send_queue": bad})


async def test_a_feed_holds_only_what_its_subscription_may_send() -> None:
    sub = parse_subscription({"channels": ["lifecycle", "input", "custom:progress"]})
    assert sub.keeps("v3:lifecycle") and sub.keeps("v3:input.requested")
    assert sub.keeps("v3:custom")  # `custom:<name>` is decided on the data, later
    assert not sub.keeps("v3:messages") and not sub.keeps("v3:values")
    assert sub.keeps("metadata") and sub.keeps("error")  # a runs-API run's: decided later
    feed = FeedQueue(bound=2, keeps=sub.keeps)
    for n in range(10):
        feed.put_nowait((f"run.{n}", "v3:messages", b"{}"))  # a burst it does not want
    feed.put_nowait(("run.10", "v3:lifecycle", b"{}"))
    assert feed.qsize() == 1 and not feed.overflowed
    assert await feed.get() == ("run.10", "v3:lifecycle", b"{}")


def test_keel_errors_map_to_protocol_codes() -> None:
    assert code_of(Forbidden("no")) == "permission_denied"
    assert code_of(NotFound("no")) == "invalid_argument"
    assert code_of(InvalidInput("no")) == "invalid_argument"
    assert code_of(Unavailable("no")) == "unknown_error"
