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
    authenticators += _jwt(guard)
    guard.quotas = build_quotas(settings, storage)
    del storage, settings
    guard.authenticators = authenticators


def _jwt(guard: Guard) -> list[Authenticator]:
    """Bearer JWTs from an OIDC provider, with `auth.jwt` (keel.auth.jwt)."""
    from keel.auth.jwt import authenticator

    found = authenticator(guard.settings.jwt, guard.base_dir)
    return [] if found is None else [found]
