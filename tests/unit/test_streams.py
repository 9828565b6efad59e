"""SSE framing, Last-Event-ID parsing, join-stream mode filters, live channels."""

from __future__ import annotations

import asyncio

import orjson

from keel.streams import RunChannel, mode_filter, parse_last_event_id, sse, sse_json, wanted


def test_sse_frame_is_crlf_with_single_data_line() -> None:
    frame = sse_json("values", {"text": "a\nb"}, 7)
    assert frame.endswith(b"\r\n\r\n")
    lines = frame.split(b"\r\n")
    assert lines[0] == b"event: values"
    assert lines[1].startswith(b"data: ") and orjson.loads(lines[1][6:]) == {"text": "a\nb"}
    assert lines[2] == b"id: 7"
    assert sse("metadata", b"{}") == b"event: metadata\r\ndata: {}\r\n\r\n"


def test_parse_last_event_id() -> None:
    assert parse_last_event_id(None) == 0
    assert parse_last_event_id("-1") == 0
    assert parse_last_event_id("-") == 0
    assert parse_last_event_id("garbage") == 0
    assert parse_last_event_id("12") == 12
    assert parse_last_event_id("0190-run.5") == 5


def test_mode_filter() -> None:
    keep = mode_filter(["updates", "messages-tuple"])
    assert wanted("updates", keep) and wanted("updates|sub:1", keep)
    assert wanted("messages", keep) and wanted("messages/partial", keep)
    assert wanted("metadata", keep) and wanted("error", keep)
    assert not wanted("values", keep)
    assert wanted("anything", mode_filter([]))


async def test_channel_replays_then_follows() -> None:
    ch = RunChannel("r", "t")
    ch.append("a", b"1")
    ch.append("b", b"2")
    seen: list[int] = []

    async def consume() -> None:
        async for ev in ch.follow(1):
            seen.append(ev.seq)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    ch.append("c", b"3")
    ch.close()
    await asyncio.wait_for(task, 30)
    assert seen == [2, 3]
