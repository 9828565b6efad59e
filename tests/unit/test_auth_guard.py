"""The guard without HTTP: `@auth.authenticate` arguments and return forms, the one-handler
lookup, handler results, default deny, the authentication cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import Auth

from keel.auth import handlers
from keel.auth.filters import FilterError
from keel.auth.guard import Guard
from keel.auth.handlers import Credentials, HandlerError
from keel.auth.user import User, normalize
from keel.errors import ConfigError, Forbidden
from keel.settings import AuthCache, AuthSettings, auth_settings


def _creds(**headers: str) -> Credentials:
    return Credentials(
        method="GET",
        path="/threads",
        headers=[(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        query_params={"q": "1"},
    )


class _Person:
    identity = "obj"
    permissions = ("p",)
    display_name = "An Object"


@pytest.mark.parametrize(
    ("returned", "identity", "permissions"),
    [
        ("plain", "plain", []),
        ({"identity": "d", "permissions": ["a"], "team": "x"}, "d", ["a"]),
        (_Person(), "obj", ["p"]),
        ((["t"], {"identity": "tup"}), "tup", ["t"]),
        ((["t"], "s"), "s", ["t"]),
    ],
)
def test_every_accepted_return_form_becomes_a_user(
    returned: Any, identity: str, permissions: list[str]
) -> None:
    user = normalize(returned)
    assert (user.identity, user.permissions) == (identity, permissions)
    assert user.is_authenticated and user["identity"] == identity


def test_custom_fields_read_as_attributes_and_items() -> None:
    user = normalize({"identity": "d", "team": "x", "org": "acme", "role": "viewer"})
    assert user.team == "x" and user["team"] == "x" and "team" in user
    assert (user.org, user.role) == ("acme", "viewer")
    assert User.from_dict(user.to_dict()).to_dict() == user.to_dict()
    assert normalize(_Person()).display_name == "An Object"


@pytest.mark.parametrize("bad", [None, 3, {"name": "no identity"}, ("a", "b", "c")])
def test_other_return_values_are_errors(bad: Any) -> None:
    with pytest.raises(Exception, match=r"identity|tuple"):
        normalize(bad)


async def test_parameters_are_injected_by_name() -> None:
    auth = Auth()
    seen: dict[str, Any] = {}

    @auth.authenticate
    async def authenticate(
        headers: dict[bytes, bytes], authorization: str | None, method: str, query_params: Any
    ) -> str:
        seen.update(headers=headers, authorization=authorization, method=method, q=query_params)
        return "someone"

    user = await handlers.authenticate(auth, _creds(Authorization="Bearer x", X_Team="t"))
    assert user is not None and user.identity == "someone"
    assert seen["headers"] == {b"authorization": b"Bearer x", b"x-team": b"t"}
    assert (seen["authorization"], seen["method"], seen["q"]) == ("Bearer x", "GET", {"q": "1"})


async def test_a_sync_handler_runs_too() -> None:
    auth = Auth()

    @auth.authenticate  # type: ignore[type-var]  # the SDK types it async; sync ones work
    def authenticate(path: str) -> dict[str, str]:
        return {"identity": path}

    user = await handlers.authenticate(auth, _creds())
    assert user is not None and user.identity == "/threads"


def test_a_parameter_keel_cannot_supply_is_a_start_up_error() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate(token: str) -> str:
        return token

    with pytest.raises(ConfigError, match="'token'"):
        handlers.check_authenticate(auth)


async def test_http_exception_keeps_its_status_and_detail() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate() -> str:
        raise Auth.exceptions.HTTPException(status_code=403, detail="go away")

    with pytest.raises(HandlerError) as info:
        await handlers.authenticate(auth, _creds())
    assert (info.value.status_code, info.value.detail) == (403, "go away")


def _with_handlers() -> Auth:
    auth = Auth()

    @auth.on
    async def everything(ctx: Any, value: Any) -> Any:
        return {"level": "global"}

    @auth.on.threads
    async def threads(ctx: Any, value: Any) -> Any:
        return {"level": "threads"}

    @auth.on.threads.create
    async def second(ctx: Any, value: Any) -> Any:
        return {"level": "create"}

    @auth.on(resources="*", actions="read")
    async def reads(ctx: Any, value: Any) -> Any:
        return {"level": "reads"}

    return auth


@pytest.mark.parametrize(
    ("resource", "action", "level"),
    [
        ("threads", "create", "create"),  # most specific
        ("threads", "delete", "threads"),
        ("assistants", "read", "reads"),
        ("crons", "delete", "global"),
    ],
)
async def test_one_handler_most_specific_first(resource: str, action: str, level: str) -> None:
    auth = _with_handlers()
    handler = handlers.find_handler(auth, resource, action)
    assert handler is not None
    assert await handlers.decide(handler, User("u"), resource, action, {}) == {"level": level}


@pytest.mark.parametrize(
    ("result", "outcome"),
    [(None, None), (True, None), ({}, None), ({"owner": "u"}, {"owner": "u"})],
)
async def test_handler_results_that_allow(result: Any, outcome: Any) -> None:
    async def handler(ctx: Any, value: Any) -> Any:
        return result

    assert await handlers.decide(handler, User("u"), "threads", "read", {}) == outcome


@pytest.mark.parametrize(
    ("raised", "returned", "error", "status"),
    [
        (None, False, Forbidden, 403),
        (AssertionError("nope"), None, Forbidden, 403),
        (Auth.exceptions.HTTPException(status_code=418, detail="tea"), None, HandlerError, 418),
        (None, "yes", FilterError, 500),
        (None, {"a": {"$gt": 1}}, FilterError, 500),
    ],
)
async def test_handler_results_that_refuse(
    raised: Exception | None, returned: Any, error: type[Exception], status: int
) -> None:
    async def handler(ctx: Any, value: Any) -> Any:
        if raised is not None:
            raise raised
        return returned

    with pytest.raises(error) as info:
        await handlers.decide(handler, User("u"), "threads", "read", {})
    assert getattr(info.value, "status_code", None) == status


async def test_handlers_may_stamp_the_value() -> None:
    auth = Auth()

    @auth.on.threads.create
    async def stamp(ctx: Any, value: Any) -> Any:
        value["metadata"]["owner"] = ctx.user.identity
        return {"owner": ctx.user.identity}

    guard = Guard(AuthSettings(path="x"), auth)
    value: dict[str, Any] = {"metadata": {}}
    scope = await guard.authorize(User("ann"), "threads", "create", value)
    assert value["metadata"] == {"owner": "ann"} and scope.filters == ({"owner": "ann"},)


async def test_default_deny_refuses_actions_no_handler_covers() -> None:
    auth = Auth()

    @auth.on.threads.read
    async def read(ctx: Any, value: Any) -> None:
        return None

    guard = Guard(AuthSettings(path="x", default="deny"), auth)
    assert (await guard.authorize(User("u"), "threads", "read", {})).unrestricted
    with pytest.raises(Forbidden, match=r"threads\.delete"):
        await guard.authorize(User("u"), "threads", "delete", {})
    allow = Guard(AuthSettings(path="x"), auth)
    assert (await allow.authorize(User("u"), "threads", "delete", {})).unrestricted


async def test_a_role_is_a_ceiling_handlers_cannot_widen() -> None:
    auth = Auth()

    @auth.on
    async def allow_all(ctx: Any, value: Any) -> bool:
        return True

    guard = Guard(AuthSettings(path="x", api_keys=True), auth)
    viewer = User("v", org="acme", role="viewer")
    assert (await guard.authorize(viewer, "threads", "read", {})).org == "acme"
    with pytest.raises(Forbidden, match="viewer"):
        await guard.authorize(viewer, "threads", "create_run", {})


async def test_the_cache_keeps_a_user_per_header_value() -> None:
    auth = Auth()
    calls: list[str | None] = []

    @auth.authenticate
    async def authenticate(authorization: str | None) -> str:
        calls.append(authorization)
        return f"user-{authorization}"

    cache = AuthCache(("authorization",), 3600.0, 2)
    guard = Guard(AuthSettings(path="x", cache=cache), auth)
    for token in ["a", "a", "b", "a", "c", "a"]:
        user = await guard.authenticate(_creds(Authorization=token))
        assert user.identity == f"user-{token}"
    # "a" stays cached (recently used); "b" is evicted by "c" (max_size 2).
    assert calls == ["a", "b", "c"]


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"path": 3},
        {"default": "maybe"},
        {"api_keys": "yes"},
        {"cache": {"ttl_seconds": -1}},
        {"cache": {"cache_keys": "authorization"}},
        {"unknown": 1},
        {"jwt": "x"},
    ],
)
def test_bad_auth_sections_are_config_errors(raw: Any) -> None:
    with pytest.raises(ConfigError):
        auth_settings(raw)


def test_auth_path_must_name_an_auth_instance(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("auth = 3\n")
    with pytest.raises(ConfigError, match=r"not a langgraph_sdk\.Auth"):
        handlers.load_auth("./a.py:auth", tmp_path)
