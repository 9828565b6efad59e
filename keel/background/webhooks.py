"""A run's webhook: which URLs may be called (`webhooks.url`, checked when the run is created and
again, with DNS resolved anew, right before each attempt) and the body posted when it ends.

The address a host resolves to is checked and then connected to directly (`Target.ip`), so a
name that resolves to a public address for the check cannot resolve to a private one for the
connection (DNS rebinding). Redirects are never followed (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from keel.endings import RunEnd
from keel.errors import InvalidInput
from keel.runs import run_view
from keel.settings.webhooks import UrlPolicy

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_nets = ipaddress.ip_network

# Never a webhook target: "this network", link-local (cloud metadata lives there), reserved,
# documentation, benchmarking, multicast and broadcast ranges.
NEVER = tuple(
    _nets(n)
    for n in (
        "0.0.0.0/8",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "fe80::/10",
        "ff00::/8",
        "64:ff9b:1::/48",
    )
)
LOOPBACK = (_nets("127.0.0.0/8"), _nets("::1/128"))
PRIVATE = tuple(
    _nets(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "host.docker.internal"})
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.amazonaws.com", "instance-data"}
)
NAT64 = _nets("64:ff9b::/96")


class Refused(InvalidInput):
    """A webhook URL the policy forbids (a 422 when a run names it)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where one attempt connects: the URL as given, its host, and the checked address."""

    url: str
    host: str
    ip: str


def check_static(url: str, policy: UrlPolicy) -> tuple[str, str, int]:
    """The checks that need no DNS: length, form, scheme, port, domain and host names.
    Returns (scheme, host, port)."""
    if len(url) > policy.max_url_length:
        raise Refused(f"Webhook URL too long (more than {policy.max_url_length} characters)")
    if url.startswith("/"):
        raise Refused(_relative_detail(policy))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"Invalid webhook URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused(f"Invalid webhook URL: scheme {scheme!r} is not http or https")
    if policy.require_https and scheme != "https":
        raise Refused("Webhook must use https")
    port = port or (443 if scheme == "https" else 80)
    if policy.allowed_ports and port not in policy.allowed_ports:
        raise Refused(f"Webhook port {port} not allowed")
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused("Invalid webhook URL: no host")
    if policy.allowed_domains and not domain_allowed(host, policy.allowed_domains):
        raise Refused("Webhook domain not allowed")
    _check_name(host, policy)
    return scheme, host, port


def _relative_detail(policy: UrlPolicy) -> str:
    if policy.disable_loopback:
        return (
            "Webhook host blocked: relative (loopback) webhook URLs are disabled "
            "(webhooks.url.disable_loopback)"
        )
    return "Relative webhook URLs are not supported by Keel: give an absolute http(s) URL"


def domain_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """`host` is one of `allowed`, or a subdomain of a `*.domain` entry (not the domain)."""
    for entry in allowed:
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if host == entry:
            return True
    return False


def _check_name(host: str, policy: UrlPolicy) -> None:
    if policy.disable_loopback and host in LOOPBACK_NAMES:
        raise Refused("Webhook host blocked: localhost address")
    if host in METADATA_NAMES:
        raise Refused("Webhook host blocked: cloud metadata endpoint")
    if host.endswith(".svc.cluster.local"):
        raise Refused("Webhook host blocked: Kubernetes internal DNS")


def blocked_reason(address: str, policy: UrlPolicy) -> str | None:
    """Why `address` may not be called, or None."""
    try:
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "invalid IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in NEVER):
            return "blocked IP range"
        embedded = ip.ipv4_mapped or (
            ipaddress.IPv4Address(ip.packed[-4:]) if ip in NAT64 else None
        )
        ip = embedded or ip
    if any(ip in net for net in NEVER if net.version == ip.version):
        return "blocked IP range"
    if policy.disable_loopback and any(ip in n for n in LOOPBACK if n.version == ip.version):
        return "loopback IP range"
    if policy.disable_private_ips and any(ip in n for n in PRIVATE if n.version == ip.version):
        return "private IP range"
    return None


async def resolve(url: str, policy: UrlPolicy) -> Target:
    """Check `url` and resolve its host now: every address it resolves to must be allowed; the
    first is the one to connect to. Raises `Refused`."""
    _, host, port = check_static(url, policy)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"Webhook host blocked: DNS resolution failed ({exc})") from None
    if not infos:
        raise Refused("Webhook host blocked: DNS resolution returned no address")
    for *_, sockaddr in infos:
        reason = blocked_reason(str(sockaddr[0]), policy)
        if reason is not None:
            raise Refused(f"Webhook host blocked: {reason}")
    return Target(url, host, str(infos[0][4][0]))


async def check_url(url: str, policy: UrlPolicy) -> None:
    """The creation-time check (a run, a cron): `Refused` (422) with the reason."""
    await resolve(url, policy)


async def check_webhook(policy: UrlPolicy, body: dict[str, Any]) -> None:
    """Refuse (422) a run-creating body (or a cron's) whose `webhook` the policy forbids;
    checked with DNS resolved, as the reference does, and again before each attempt."""
    url = body.get("webhook")
    if url:
        await check_url(str(url), policy)


def frozen_body(end: RunEnd) -> dict[str, Any]:
    """The body posted for a run that ended, as the run's terminal transaction fixes it: the
    Run as the API shows it, with its final status, when it started (None: it never started,
    a pending run cancelled) and ended, its thread's values, its error. `webhook_sent_at` is
    added at each attempt."""
    run = end.run
    started = run["updated_at"] if run.get("status") == "running" else None
    body: dict[str, Any] = {
        **run_view(run),
        "updated_at": end.now,
        "status": end.status,
        "run_started_at": started,
        "run_ended_at": end.now,
        "values": end.values,
    }
    if end.error is not None:
        body["error"] = end.error
    return body
