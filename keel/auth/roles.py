"""Built-in roles: what each may do, as `resource:action` permissions.

A role is a ceiling: a project's own `@auth.on` handlers run after it and may narrow what it
allows, never widen it.
"""

from __future__ import annotations

from keel.errors import ConfigError

ACTIONS: dict[str, tuple[str, ...]] = {
    "threads": ("create", "read", "update", "delete", "search", "create_run"),
    "assistants": ("create", "read", "update", "delete", "search"),
    "crons": ("create", "read", "update", "delete", "search"),
    "store": ("put", "get", "search", "delete", "list_namespaces"),
}
READS = frozenset({"read", "search", "get", "list_namespaces"})
# Keel's own administration: API keys and the audit log.
ADMIN_ONLY = ("keys:manage", "audit:read")


def _all() -> tuple[str, ...]:
    return tuple(f"{r}:{a}" for r, actions in ACTIONS.items() for a in actions)


ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset((*_all(), *ADMIN_ONLY)),
    "member": frozenset(_all()),
    "viewer": frozenset(p for p in _all() if p.split(":")[1] in READS),
}


def permissions(role: str) -> frozenset[str]:
    try:
        return ROLES[role]
    except KeyError:
        raise ConfigError(f"unknown role {role!r}; roles are {', '.join(ROLES)}") from None


def allows(role: str | None, resource: str, action: str) -> bool:
    """Whether `role` may do `action` on `resource` (None: a user without a built-in role)."""
    if role is None:
        return False
    return f"{resource}:{action}" in ROLES.get(role, frozenset())
