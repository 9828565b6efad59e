"""Keel's built-in auth parts, as the settings ask for them: API-key and JWT authenticators,
the audit log, quotas. `install` hangs them on the guard once storage exists."""

from __future__ import annotations

from keel.auth.guard import Authenticator, Guard
from keel.auth.quotas import build_quotas
from keel.storage.base import Storage


def install(guard: Guard, storage: Storage) -> None:
    settings = guard.settings
    authenticators: list[Authenticator] = []
    # API keys (keel.auth.keys), JWT (keel.auth.jwt), the audit log (keel.auth.audit) and the
    # quotas (keel.auth.quotas) are added here as they land.
    authenticators += _api_keys(guard, storage)
    authenticators += _jwt(guard)
    guard.quotas = build_quotas(settings, storage)
    _audit(guard, storage)
    del storage, settings
    guard.authenticators = authenticators


def _jwt(guard: Guard) -> list[Authenticator]:
    """Bearer JWTs from an OIDC provider, with `auth.jwt` (keel.auth.jwt)."""
    from keel.auth.jwt import authenticator

    found = authenticator(guard.settings.jwt, guard.base_dir)
    return [] if found is None else [found]


def _api_keys(guard: Guard, storage: Storage) -> list[Authenticator]:
    """`auth.api_keys`: keys made with `keel keys create` (keel.auth.keys)."""
    if not guard.settings.api_keys:
        return []
    from keel.auth.keys import KeyAuthenticator

    keys = KeyAuthenticator(storage)
    guard.parts.append(keys)
    return [keys]


def _audit(guard: Guard, storage: Storage) -> None:
    """Any auth: refused and changing requests go to the audit log (keel.auth.audit)."""
    if not guard.enabled:
        return
    from keel.auth.audit import AuditLog

    audit = AuditLog(storage)
    guard.audit = audit
    guard.parts.append(audit)
