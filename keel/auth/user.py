"""`User`: who a request is, as `@auth.on` handlers and graphs see it.

It satisfies `langgraph_sdk.auth.types.BaseUser` (identity, display_name, is_authenticated,
permissions, item access) and keeps what an `@auth.authenticate` handler returned: its other
fields read as attributes or items. `org` and `role` are Keel's (built-in auth, or fields of
that name in what a handler returned).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from keel.errors import KeelError

CORE = ("identity", "display_name", "is_authenticated", "permissions")
# The `configurable` key of the user a run carries (as the reference names it), and where a run
# row keeps it: `kwargs.config.configurable.langgraph_auth_user`.
AUTH_USER = "langgraph_auth_user"
RUN_USER_PATH = ("config", "configurable", AUTH_USER)


class AuthenticationError(KeelError):
    status_code = 401


class User:
    def __init__(
        self,
        identity: str,
        *,
        display_name: str | None = None,
        is_authenticated: bool = True,
        permissions: Sequence[str] = (),
        org: str | None = None,
        role: str | None = None,
        fields: Mapping[str, Any] | None = None,
        source: Any = None,
    ) -> None:
        self.identity = identity
        self.display_name = display_name or identity
        self.is_authenticated = is_authenticated
        self.permissions = list(permissions)
        self.org = org
        self.role = role
        self.fields = dict(fields or {})
        self.source = source  # what the authenticate handler returned, for attribute access

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("fields", "source"):
            raise AttributeError(name)
        if name in self.fields:
            return self.fields[name]
        source = self.__dict__.get("source")
        if source is not None and not isinstance(source, (str, Mapping)):
            return getattr(source, name)
        raise AttributeError(name)

    def __getitem__(self, key: str) -> Any:
        if key in CORE or key in ("org", "role"):
            return getattr(self, key)
        return self.fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    # A mapping as the reference's user is (graphs call `dict(user)` on the one a run carries).
    def keys(self) -> Any:
        return self.to_dict().keys()

    def values(self) -> Any:
        return self.to_dict().values()

    def items(self) -> Any:
        return self.to_dict().items()

    def to_dict(self) -> dict[str, Any]:
        """The user as runs carry it (`configurable.langgraph_auth_user`): JSON only."""
        out: dict[str, Any] = {**self.fields}
        out.update(
            identity=self.identity,
            display_name=self.display_name,
            is_authenticated=self.is_authenticated,
            permissions=list(self.permissions),
        )
        if self.org is not None:
            out["org"] = self.org
        if self.role is not None:
            out["role"] = self.role
        return out

    # langgraph_sdk's ProxyUser offers these; handlers written for the reference call them.
    def dict(self) -> Mapping[str, Any]:
        return self.to_dict()

    def model_dump(self) -> Mapping[str, Any]:
        return self.to_dict()

    def __repr__(self) -> str:
        return f"User({self.identity!r}, org={self.org!r}, role={self.role!r})"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> User:
        """The user a run carried (see `to_dict`)."""
        rest = {k: v for k, v in data.items() if k not in (*CORE, "org", "role")}
        return cls(
            str(data.get("identity", "")),
            display_name=data.get("display_name"),
            is_authenticated=bool(data.get("is_authenticated", True)),
            permissions=list(data.get("permissions") or ()),
            org=data.get("org"),
            role=data.get("role"),
            fields=rest,
        )


def normalize(response: Any) -> User:
    """A `User` from anything `@auth.authenticate` may return: a string identity; a dict with
    `identity` (and optionally `permissions`, `display_name`, `is_authenticated`, others); an
    object with `.identity`; a `(permissions, user)` tuple."""
    permissions: Any = None
    user = response
    if isinstance(response, tuple):
        if len(response) != 2:
            raise KeelError(
                "Auth handler returned a tuple of "
                f"{len(response)} items; expected (permissions, user)"
            )
        permissions, user = response
    if isinstance(user, User):
        if permissions is not None:
            user.permissions = list(permissions)
        return user
    if isinstance(user, str):
        return User(user, permissions=permissions or ())
    if isinstance(user, Mapping) and "identity" in user:
        return _from_mapping(user, permissions)
    if hasattr(user, "identity"):
        return _from_object(user, permissions)
    raise KeelError(
        "Auth handler must return an identity: a string, a dict with 'identity', an object with "
        f".identity, or (permissions, user); got {type(user).__name__}"
    )


def _from_mapping(user: Mapping[str, Any], permissions: Any) -> User:
    rest = {k: v for k, v in user.items() if k not in (*CORE, "org", "role")}
    return User(
        str(user["identity"]),
        display_name=user.get("display_name"),
        is_authenticated=bool(user.get("is_authenticated", True)),
        permissions=permissions if permissions is not None else user.get("permissions") or (),
        org=_opt_str(user.get("org")),
        role=_opt_str(user.get("role")),
        fields=rest,
        source=user,
    )


def _from_object(user: Any, permissions: Any) -> User:
    if permissions is None:
        permissions = getattr(user, "permissions", None) or ()
    return User(
        str(user.identity),
        display_name=getattr(user, "display_name", None),
        is_authenticated=bool(getattr(user, "is_authenticated", True)),
        permissions=permissions,
        org=_opt_str(getattr(user, "org", None)),
        role=_opt_str(getattr(user, "role", None)),
        source=user,
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def run_user(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """The user a run row carries (its stored dict, or the `User` the worker put in its place);
    empty when it carries none."""
    user: Any = run.get("kwargs") or {}
    for part in RUN_USER_PATH:
        user = user.get(part) if isinstance(user, Mapping) else None
    if isinstance(user, User):
        return user.to_dict()
    return user if isinstance(user, Mapping) else {}
