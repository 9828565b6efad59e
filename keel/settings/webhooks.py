"""The `webhooks` section: the reference's URL policy (`url`), static headers (`headers`, with
`${{ env.VAR }}` templates limited to `env_prefix`) and `allowed_fields`; plus Keel's own delivery
keys (`secret`, `timeout_seconds`, `retry`, `concurrency`). See docs/webhooks.md."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

from keel.errors import ConfigError
from keel.settings.fields import number, section

DEFAULT_ENV_PREFIX = "LG_WEBHOOK_"
# Keys of a webhook body (the reference's `allowed_fields` may name only these).
BODY_FIELDS = frozenset(
    {
        "run_id",
        "thread_id",
        "assistant_id",
        "created_at",
        "updated_at",
        "metadata",
        "kwargs",
        "multitask_strategy",
        "status",
        "run_started_at",
        "run_ended_at",
        "webhook_sent_at",
        "values",
        "error",
    }
)
URL_KEYS = {
    "require_https",
    "allowed_domains",
    "allowed_ports",
    "max_url_length",
    "disable_loopback",
    "disable_private_ips",
}
RETRY_KEYS = {"window_seconds", "initial_seconds", "max_seconds"}
WEBHOOK_KEYS = {
    "env_prefix",
    "url",
    "headers",
    "allowed_fields",
    "secret",
    "timeout_seconds",
    "retry",
    "concurrency",
}
TEMPLATE = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclasses.dataclass(frozen=True)
class UrlPolicy:
    """`webhooks.url`. Without the section: http allowed, 4096 characters; a section that
    leaves a key out gets the reference's defaults for it (https required, 2048 characters)."""

    require_https: bool = False
    allowed_domains: tuple[str, ...] = ()  # "hooks.example.com", "*.example.com"
    allowed_ports: tuple[int, ...] = ()
    max_url_length: int = 4096
    disable_loopback: bool = True
    disable_private_ips: bool = False


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Keel's `webhooks.retry`: attempts are spaced by exponential backoff with jitter, from
    `initial_seconds` doubling up to `max_seconds`, for `window_seconds` after the run ended;
    then the delivery is recorded as failed."""

    window_seconds: float = 24 * 3600.0
    initial_seconds: float = 5.0
    max_seconds: float = 3600.0


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    url: UrlPolicy = UrlPolicy()
    env_prefix: str = DEFAULT_ENV_PREFIX
    # Header values as written (templates resolved once the config's `env` is exported).
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    allowed_fields: frozenset[str] | None = None
    secret: str | None = None  # Keel's: "whsec_<base64>", or a template "${{ env.VAR }}"
    timeout_seconds: float = 30.0
    retry: RetryPolicy = RetryPolicy()
    concurrency: int = 10  # deliveries in flight at once per process

    def resolved_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """`headers` with their templates filled from the environment."""
        env = os.environ if environ is None else environ
        return {
            k: fill(v, env, self.env_prefix, f"webhooks.headers.{k}")
            for k, v in self.headers.items()
        }

    def resolved_secret(self, environ: Mapping[str, str] | None = None) -> str | None:
        if not self.secret:
            return None
        env = os.environ if environ is None else environ
        return fill(self.secret, env, "", "webhooks.secret") or None

    def signing_key(self, environ: Mapping[str, str] | None = None) -> bytes | None:
        """The key bytes of the secret (None without one)."""
        secret = self.resolved_secret(environ)
        return secret_key(secret) if secret else None


def check_environment(settings: WebhookSettings, environ: Mapping[str, str]) -> None:
    """At load time (the config's `env` counted): every template resolves, the secret decodes;
    else a ConfigError naming what is wrong, before anything starts."""
    settings.resolved_headers(environ)
    settings.signing_key(environ)


def fill(text: str, environ: Mapping[str, str], prefix: str, what: str) -> str:
    """`text` with each `${{ env.VAR }}` replaced by the variable's value; VAR must start with
    `prefix` and be set."""

    def one(match: re.Match[str]) -> str:
        var = env_reference(match.group(1), prefix, what)
        if var not in environ:
            raise ConfigError(f"{what}: environment variable {var!r} is not set")
        return environ[var]

    return TEMPLATE.sub(one, text)


def env_reference(expr: str, prefix: str, what: str) -> str:
    """The variable of a template's expression `env.VAR`, or a ConfigError."""
    if not expr.startswith("env."):
        raise ConfigError(f"{what}: only ${{{{ env.VAR }}}} templates are allowed, got {expr!r}")
    var = expr[len("env.") :]
    if not var or "." in var:
        raise ConfigError(f"{what}: invalid environment variable reference {expr!r}")
    if prefix and not var.startswith(prefix):
        raise ConfigError(f"{what}: environment variable {var!r} must start with {prefix!r}")
    return var




def _bool(raw: Any, key: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(f"{key} must be true or false, got {raw!r}")
    return raw




def _domains(raw: Any) -> tuple[str, ...]:
    key = "webhooks.url.allowed_domains"
    if not isinstance(raw, list) or not all(isinstance(d, str) and d for d in raw):
        raise ConfigError(f"{key} must be a list of non-empty strings, got {raw!r}")
    for domain in raw:
        if "*" in domain and not (domain.startswith("*.") and "*" not in domain[2:]):
            raise ConfigError(f"{key}: a wildcard is only allowed as a '*.' prefix, got {domain!r}")
    return tuple(d.strip().lower() for d in raw)


def _ports(raw: Any) -> tuple[int, ...]:
    ok = isinstance(raw, list) and all(
        isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in raw
    )
    if not ok:
        raise ConfigError(f"webhooks.url.allowed_ports must be a list of ports, got {raw!r}")
    return tuple(raw)


def url_policy(raw: Any) -> UrlPolicy:
    """`webhooks.url`; keys left out take the reference's defaults for a given section."""
    if raw is None:
        return UrlPolicy()
    raw = section(raw, "webhooks.url", URL_KEYS)
    length = raw.get("max_url_length", 2048)
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise ConfigError(f"webhooks.url.max_url_length must be a positive integer, got {length!r}")
    return UrlPolicy(
        require_https=_bool(raw.get("require_https", True), "webhooks.url.require_https"),
        allowed_domains=_domains(raw.get("allowed_domains", [])),
        allowed_ports=_ports(raw.get("allowed_ports", [])),
        max_url_length=length,
        disable_loopback=_bool(raw.get("disable_loopback", True), "webhooks.url.disable_loopback"),
        disable_private_ips=_bool(
            raw.get("disable_private_ips", False), "webhooks.url.disable_private_ips"
        ),
    )


def _retry(raw: Any) -> RetryPolicy:
    if raw is None:
        return RetryPolicy()
    raw = section(raw, "webhooks.retry", RETRY_KEYS)
    base = RetryPolicy()
    values = {
        k: number(raw[k], f"webhooks.retry.{k}") if k in raw else getattr(base, k)
        for k in RETRY_KEYS
    }
    return RetryPolicy(**values)


def _headers(raw: Any, prefix: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError("webhooks.headers must be an object of header names to strings")
    for name, value in raw.items():
        for match in TEMPLATE.finditer(value):
            env_reference(match.group(1), prefix, f"webhooks.headers.{name}")
    return {str(k): v for k, v in raw.items()}


def _fields(raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        raise ConfigError("webhooks.allowed_fields must be a list of strings")
    bad = sorted(set(raw) - BODY_FIELDS)
    if bad:
        raise ConfigError(
            f"webhooks.allowed_fields: unknown fields {bad} (valid: {sorted(BODY_FIELDS)})"
        )
    return frozenset(raw)


def _secret(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise ConfigError("webhooks.secret must be a non-empty string")
    for match in TEMPLATE.finditer(raw):
        env_reference(match.group(1), "", "webhooks.secret")
    return raw


def webhook_settings(raw: Any) -> WebhookSettings:
    if raw is None:
        return WebhookSettings()
    raw = section(raw, "webhooks", WEBHOOK_KEYS)
    prefix = raw.get("env_prefix", DEFAULT_ENV_PREFIX)
    if not isinstance(prefix, str):
        raise ConfigError(f"webhooks.env_prefix must be a string, got {prefix!r}")
    concurrency = raw.get("concurrency", 10)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency <= 0:
        raise ConfigError(f"webhooks.concurrency must be a positive integer, got {concurrency!r}")
    return WebhookSettings(
        url=url_policy(raw.get("url")),
        env_prefix=prefix,
        headers=_headers(raw.get("headers"), prefix),
        allowed_fields=_fields(raw.get("allowed_fields")),
        secret=_secret(raw.get("secret")),
        timeout_seconds=number(raw.get("timeout_seconds", 30.0), "webhooks.timeout_seconds"),
        retry=_retry(raw.get("retry")),
        concurrency=concurrency,
    )


PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (the prefix is optional)."""
    text = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("webhooks.secret must be 'whsec_' followed by base64") from None
    if len(key) < 16:
        raise ConfigError("webhooks.secret: the key must be at least 16 bytes (24 base64 chars)")
    return key
