"""Webhooks without a server: the URL policy (static checks, addresses, re-resolution), the
`webhooks` settings, Standard Webhooks signing, backoff, and the pinned request."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.background import signing
from keel.background.outbox import backoff, pinned_request
from keel.background.webhooks import Refused, Target, blocked_reason, check_static, resolve
from keel.errors import ConfigError
from keel.settings import load_settings
from keel.settings.webhooks import RetryPolicy, UrlPolicy, secret_key, webhook_settings
from tests.support.receiver import verify

OPEN = UrlPolicy(disable_loopback=False)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# ------------------------------------------------------------------ static checks
@pytest.mark.parametrize(
    ("url", "policy", "detail"),
    [
        ("http://a.example.com/x", UrlPolicy(require_https=True), "must use https"),
        ("https://a.example.com:8443/x", UrlPolicy(allowed_ports=(443,)), "port 8443"),
        ("http://a.example.com/x", UrlPolicy(allowed_ports=(443,)), "port 80"),
        ("https://example.com/x", UrlPolicy(allowed_domains=("*.example.com",)), "domain"),
        ("https://evilexample.com/", UrlPolicy(allowed_domains=("*.example.com",)), "domain"),
        ("https://a.example.com/" + "x" * 30, UrlPolicy(max_url_length=40), "too long"),
        ("https://localhost/x", UrlPolicy(), "localhost"),
        ("https://metadata.google.internal/x", OPEN, "metadata"),
        ("http://api.default.svc.cluster.local/x", OPEN, "Kubernetes"),
        ("/internal/hook", UrlPolicy(), "disable_loopback"),
        ("/internal/hook", OPEN, "not supported"),
        ("ftp://a.example.com/x", OPEN, "scheme"),
        ("http:///x", OPEN, "no host"),
        ("http://a.example.com:99999/x", OPEN, "Invalid webhook URL"),
    ],
)
def test_static_refusals(url: str, policy: UrlPolicy, detail: str) -> None:
    with pytest.raises(Refused) as caught:
        check_static(url, policy)
    assert detail in caught.value.detail and caught.value.status_code == 422


def test_static_passes() -> None:
    wild = UrlPolicy(allowed_domains=("*.example.com", "hooks.example.org"), allowed_ports=(443,))
    assert check_static("https://A.b.example.com/x", wild) == ("https", "a.b.example.com", 443)
    assert check_static("https://hooks.example.org/x", wild)[1] == "hooks.example.org"
    assert check_static("http://localhost:8000/x", OPEN) == ("http", "localhost", 8000)


@pytest.mark.parametrize(
    ("address", "policy", "reason"),
    [
        ("8.8.8.8", UrlPolicy(disable_private_ips=True), None),
        ("2001:4860:4860::8888", UrlPolicy(), None),
        ("127.0.0.1", UrlPolicy(), "loopback"),
        ("127.0.0.1", OPEN, None),
        ("::1", UrlPolicy(), "loopback"),
        ("::ffff:127.0.0.1", UrlPolicy(), "loopback"),  # IPv4-mapped
        ("64:ff9b::7f00:1", UrlPolicy(), "loopback"),  # NAT64 of 127.0.0.1
        ("169.254.169.254", OPEN, "blocked"),  # cloud metadata (link-local), always
        ("0.0.0.0", OPEN, "blocked"),
        ("fe80::1", OPEN, "blocked"),
        ("224.0.0.1", OPEN, "blocked"),
        ("10.1.2.3", UrlPolicy(), None),  # private allowed by default, as the reference
        ("10.1.2.3", UrlPolicy(disable_private_ips=True), "private"),
        ("192.168.1.1", UrlPolicy(disable_private_ips=True), "private"),
        ("fd00::1", UrlPolicy(disable_private_ips=True), "private"),
        ("100.64.0.1", UrlPolicy(disable_private_ips=True), "private"),
    ],
)
def test_addresses(address: str, policy: UrlPolicy, reason: str | None) -> None:
    got = blocked_reason(address, policy)
    assert (got is None) if reason is None else (got is not None and reason in got)


# ------------------------------------------------------------------ resolution
def _resolver(answers: dict[str, list[str]]) -> Any:
    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    return getaddrinfo


async def test_resolved_addresses_are_checked_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that resolves to a public address is accepted; resolved again (say, at send time)
    to a private or loopback one, it is refused: no DNS rebinding."""
    loop = asyncio.get_running_loop()
    policy = UrlPolicy(disable_private_ips=True)
    url = "https://hooks.example.com/x"
    monkeypatch.setattr(loop, "getaddrinfo", _resolver({"hooks.example.com": ["93.184.216.34"]}))
    assert await resolve(url, policy) == Target(url, "hooks.example.com", "93.184.216.34")
    for rebound in (["10.0.0.7"], ["93.184.216.34", "127.0.0.1"]):
        monkeypatch.setattr(loop, "getaddrinfo", _resolver({"hooks.example.com": rebound}))
        with pytest.raises(Refused, match="blocked"):
            await resolve(url, policy)
    monkeypatch.setattr(loop, "getaddrinfo", _resolver({}))
    with pytest.raises(Refused, match="DNS resolution failed"):
        await resolve(url, policy)


# ------------------------------------------------------------------ settings
def test_url_section_defaults_follow_the_reference() -> None:
    assert webhook_settings(None).url == UrlPolicy()  # no section: http allowed, 4096
    assert UrlPolicy().max_url_length == 4096 and UrlPolicy().disable_loopback
    given = webhook_settings({"url": {"allowed_domains": ["*.example.com"]}}).url
    assert given.require_https and given.max_url_length == 2048 and given.disable_loopback
    assert not given.disable_private_ips


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ({"url": {"allowed_domains": ["a.*.com"]}}, "wildcard"),
        ({"url": {"allowed_ports": [0]}}, "allowed_ports"),
        ({"url": {"bogus": 1}}, "not supported"),
        ({"headers": {"x": "${{ env.OTHER_SECRET }}"}}, "must start with 'LG_WEBHOOK_'"),
        ({"headers": {"x": "${{ secrets.X }}"}}, "only ${{ env.VAR }}"),
        ({"allowed_fields": ["run_id", "password"]}, "unknown fields"),
        ({"retry": {"window_seconds": 0}}, "window_seconds"),
        ({"timeout_seconds": "10"}, "timeout_seconds"),
    ],
)
def test_bad_settings(raw: dict[str, Any], detail: str) -> None:
    with pytest.raises(ConfigError) as caught:
        webhook_settings(raw)
    assert detail in str(caught.value)


def test_header_templates_and_secret_from_the_environment() -> None:
    raw = {
        "env_prefix": "HOOK_",
        "headers": {"authorization": "Bearer ${{ env.HOOK_TOKEN }}", "x-static": "1"},
        "secret": "${{ env.KEEL_WEBHOOK_SECRET }}",
    }
    settings = webhook_settings(raw)
    env = {"HOOK_TOKEN": "t0k", "KEEL_WEBHOOK_SECRET": SECRET}
    assert settings.resolved_headers(env) == {"authorization": "Bearer t0k", "x-static": "1"}
    assert settings.resolved_secret(env) == SECRET
    with pytest.raises(ConfigError, match="HOOK_TOKEN"):
        settings.resolved_headers({})


# ------------------------------------------------------------------ signing
def test_signature_matches_the_published_example() -> None:
    """The example of the Standard Webhooks specification and its reference libraries."""
    key = secret_key(SECRET)
    body = b'{"test": 2432232314}'
    sig = signing.sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_verify_and_tampering_does_not() -> None:
    key = secret_key(SECRET)
    body = b'{"run_id": "r1"}'
    headers = signing.headers(key, "msg_1", int(time.time()), body)
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, headers, body + b" ")
    assert not verify(SECRET, {**headers, "webhook-id": "msg_2"}, body)
    assert "webhook-signature" not in signing.headers(None, "msg_1", 1, body)
    with pytest.raises(ConfigError):
        secret_key("whsec_not base64!")


# ------------------------------------------------------------------ delivery pieces
def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    retry = RetryPolicy(initial_seconds=1.0, max_seconds=8.0)
    rand = random.Random(7)
    for attempts, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (500, 8.0)]:
        for _ in range(20):
            assert step / 2 <= backoff(attempts, retry, rand) <= step


async def test_the_request_goes_to_the_checked_address() -> None:
    async with httpx.AsyncClient() as client:
        plain = pinned_request(
            client,
            Target("http://hooks.example.com:8080/a?b=1", "hooks.example.com", "93.184.216.34"),
            b"{}",
            {},
        )
        assert str(plain.url) == "http://93.184.216.34:8080/a?b=1"
        assert plain.headers["host"] == "hooks.example.com:8080"
        tls = pinned_request(
            client,
            Target("https://hooks.example.com/a", "hooks.example.com", "2606:2800:220:1::1"),
            b"{}",
            {},
        )
        assert tls.url.host == "2606:2800:220:1::1" and tls.headers["host"] == "hooks.example.com"
        assert tls.extensions["sni_hostname"] == "hooks.example.com"


def test_templates_are_checked_when_the_config_loads(tmp_path: Path) -> None:
    """A template naming an unset variable (or a secret that is not base64) stops the start;
    the config's own `env` counts."""
    config = tmp_path / "keel.json"
    hooks = {"headers": {"x-token": "${{ env.LG_WEBHOOK_T }}"}}
    config.write_text(json.dumps({"graphs": {}, "webhooks": hooks}))
    with pytest.raises(ConfigError, match="LG_WEBHOOK_T"):
        load_settings(config)
    config.write_text(json.dumps({"graphs": {}, "webhooks": hooks, "env": {"LG_WEBHOOK_T": "t"}}))
    assert load_settings(config).webhooks.resolved_headers({"LG_WEBHOOK_T": "t"}) == {
        "x-token": "t"
    }
    config.write_text(json.dumps({"graphs": {}, "webhooks": {"secret": "whsec_%%%"}}))
    with pytest.raises(ConfigError, match="base64"):
        load_settings(config)
