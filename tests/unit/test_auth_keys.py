"""API keys and the audit log, the pure parts: the key format, what is audited, scrubbing."""

from __future__ import annotations

import pytest

from keel import clock
from keel.auth import keys
from keel.auth.audit import parse_since, scrub
from keel.errors import InvalidInput
from keel.http.auditing import outcome


def test_a_key_has_256_random_bits_and_names_itself() -> None:
    key_id, key = keys.new_key()
    assert keys.parse_key(key) == key_id
    secret = key.split("_")[2]
    assert len(secret) == 64 and int(secret, 16) >= 0  # 32 bytes from `secrets`, in hex
    assert len({keys.new_key()[1] for _ in range(100)}) == 100
    assert keys.digest(key) != keys.digest(keys.new_key()[1])
    assert len(keys.digest(key)) == 64


@pytest.mark.parametrize(
    "token",
    [
        "",
        "keel_",
        "keel_abc",
        f"keel_{'a' * 16}_{'b' * 63}",
        f"keel_{'A' * 16}_{'b' * 64}",
        f"keel_{'a' * 16}_{'b' * 64}\n",
        f"xkeel_{'a' * 16}_{'b' * 64}",
        f"keel_{'a' * 15}__{'b' * 64}",
    ],
)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert keys.parse_key(token) is None


def test_key_fields_are_checked() -> None:
    assert keys.check_role("viewer") == "viewer"
    for bad in (
        lambda: keys.check_role("root"),
        lambda: keys.check_org(""),
        lambda: keys.check_org("x" * 201),
        lambda: keys.check_days(0),
        lambda: keys.check_days(True),
        lambda: keys.check_days(10**9),
        lambda: keys.check_name(3),
        lambda: keys.check_name("a\x00b"),
        lambda: keys.check_org("tab\there"),
    ):
        with pytest.raises(InvalidInput):
            bad()


@pytest.mark.parametrize(
    "method, template, status, expected",
    [
        ("GET", "/threads/{thread_id}", 200, None),
        ("POST", "/threads/search", 200, None),
        ("POST", "/store/namespaces", 200, None),
        ("POST", "/threads", 200, "ok"),
        ("POST", "/threads/{thread_id}/runs/{run_id}/cancel", 202, "ok"),
        ("PUT", "/store/items", 204, "ok"),
        ("PATCH", "/threads/{thread_id}", 200, "ok"),
        ("DELETE", "/threads/{thread_id}", 204, "ok"),
        ("POST", "/threads", 422, None),
        ("POST", "/threads", 500, None),
        ("GET", "/threads/{thread_id}", 404, "refused"),
        ("GET", None, 404, "refused"),
        ("POST", "/threads/search", 401, "refused"),
        ("POST", "/threads", 403, "refused"),
        ("POST", "/threads", 409, "refused"),
        ("POST", "/threads", 413, "refused"),
        ("POST", "/threads", 429, "refused"),
        ("GET", "/threads", 400, None),
    ],
)
def test_what_is_audited(method: str, template: str | None, status: int, expected: str) -> None:
    assert outcome(method, template, status) == expected


def test_scrub_removes_credentials_and_bounds_the_length() -> None:
    _, key = keys.new_key()
    text = scrub(f"bad {key} and Bearer abc.def and basic dXNlcg== and eyJhbGc.eyJzdWI.sig ok")
    assert text == "bad keel_*** and Bearer *** and basic *** and *** ok"
    assert len(scrub("x" * 10_000) or "") == 500
    assert scrub(None) is None


def test_since_takes_iso_times_and_spans() -> None:
    assert parse_since("2026-01-02T03:04:05") == "2026-01-02T03:04:05.000000+00:00"
    assert parse_since("2026-01-02T04:04:05+01:00") == "2026-01-02T03:04:05.000000+00:00"
    hour_ago = clock.parse(parse_since("1h"))
    assert abs(clock.now() - 3600 - hour_ago) < 60
    with pytest.raises(InvalidInput):
        parse_since("last tuesday")
