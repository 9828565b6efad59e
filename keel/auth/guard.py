"""`Guard`: authenticates requests into users and turns resource actions into scopes.

Authentication tries Keel's built-in credentials first (an API key or a JWT, when configured),
then the project's `@auth.authenticate`. Authorization checks the built-in role (a ceiling),
then calls the project's one `@auth.on` handler for the action; the result is a `Scope`.
Requests and runs pass the quotas. The HTTP edge records refused and changing requests in the
audit log (`audit`), one entry per request; the guard itself records only refusals made outside
such a request (a cron's run refused by a quota).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from langgraph_sdk import Auth

from keel.auth import handlers, roles
from keel.auth.handlers import Credentials
from keel.auth.scope import EVERYTHING, Scope
from keel.auth.user import AuthenticationError, User, run_user
from keel.errors import Forbidden, KeelError, TooManyRequests
from keel.settings import AuthSettings

if TYPE_CHECKING:
    from keel.storage.tx import Row, Tx

# True while the HTTP edge handles a request it audits (keel/http/auditing.py).
AUDITED_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "keel_audited_request", default=False
)
# Resources whose rows without an organisation (system assistants) every org may read.
SHARED = {("assistants", "read"), ("assistants", "search")}


class Authenticator(Protocol):
    """A built-in credential (API keys, JWT)."""

    def claims(self, token: str) -> bool:
        """Whether `token` is this authenticator's kind of credential."""
        ...

    async def authenticate(self, token: str) -> User:
        """The token's user; AuthenticationError when it is not valid."""
        ...


@dataclasses.dataclass
class AuditEntry:
    action: str  # a request: "<METHOD> <route template>"; else "keys.create", "quota.refused"...
    outcome: str  # "ok" (a change made), "refused" (401, 403, 404, 409, 413, 429)
    identity: str | None = None
    org: str | None = None
    resource_id: str | None = None
    status: int | None = None
    detail: str | None = None


class AuditSink(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...


class Quotas(Protocol):
    async def admit_request(self, user: User) -> None:
        """Raise TooManyRequests when `user` (their org, their key) is over its request rate."""
        ...

    async def admit_run(self, tx: Tx, run: Row) -> None:
        """Inside the transaction that inserted `run`: raise TooManyRequests when its org (or
        key) is at its concurrent or daily run limit (the creation then rolls back)."""
        ...


class Part(Protocol):
    """A built-in part with a life of its own (a background task), started and stopped with
    the HTTP server."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class NoAudit:
    async def record(self, entry: AuditEntry) -> None:
        return None


def presented_tokens(creds: Credentials) -> list[str]:
    """The credentials a request presents, in order: `x-api-key`, `Authorization: Bearer`."""
    tokens = []
    key = creds.header(b"x-api-key")
    if key and key.strip():
        tokens.append(key.strip())
    authorization = creds.header(b"authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            tokens.append(token.strip())
    return tokens


class Guard:
    base_dir: Path = Path()  # the config file's directory: relative paths in `auth` start there

    def __init__(
        self,
        settings: AuthSettings,
        auth: Auth | None = None,
        authenticators: list[Authenticator] | None = None,
        audit: AuditSink | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.authenticators = authenticators or []
        self.audit: AuditSink = audit or NoAudit()
        self.quotas = quotas
        self._audits: set[asyncio.Task[None]] = set()
        self.parts: list[Part] = []
        self._cache: OrderedDict[tuple[str | None, ...], tuple[float, User]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def start(self) -> None:
        for part in self.parts:
            await part.start()

    async def stop(self) -> None:
        """Stop the parts, last started first (the audit log flushes what it holds)."""
        for part in reversed(self.parts):
            await part.stop()

    async def _record(self, entry: AuditEntry) -> None:
        """A refusal made outside an audited HTTP request (there the edge records it)."""
        if not AUDITED_REQUEST.get():
            await self.audit.record(entry)

    # ------------------------------------------------------------ authentication
    async def authenticate(self, creds: Credentials) -> User:
        user = await self._identify(creds)
        if self.quotas is not None:
            try:
                await self.quotas.admit_request(user)
            except TooManyRequests as exc:
                # Who was refused, for the edge's audit entry (it has no user yet).
                exc.identity, exc.org = user.identity, user.org  # type: ignore[attr-defined]
                await self._record(_refused(exc, user.identity, user.org, None))
                raise
        return user

    async def admit_run(self, tx: Tx, run: Row) -> None:
        """`RunService.admit`: the quotas' run check. A refusal is audited once the creation's
        transaction is over (an audit write inside it could wait on that very transaction)."""
        if self.quotas is None:
            return
        try:
            await self.quotas.admit_run(tx, run)
        except TooManyRequests as exc:
            user = run_user(run)
            entry = _refused(exc, user.get("identity"), run.get("org"), run["run_id"])
            task = asyncio.get_running_loop().create_task(self._record(entry))
            self._audits.add(task)
            task.add_done_callback(self._audits.discard)
            raise

    async def _identify(self, creds: Credentials) -> User:
        # The first credential a built-in authenticator recognises decides (an SDK may send a
        # stray `x-api-key` from its environment next to a real bearer token).
        tokens = presented_tokens(creds)
        for token in tokens:
            for authenticator in self.authenticators:
                if authenticator.claims(token):
                    return await authenticator.authenticate(token)
        if self.auth is not None and self.auth._authenticate_handler is not None:
            return await self._custom(creds)
        if self.authenticators:
            detail = "Invalid credentials" if tokens else "Missing credentials"
            raise AuthenticationError(detail)
        # Handlers without `@auth.authenticate`: as the reference, an anonymous user.
        return User("anonymous", is_authenticated=False)

    async def _custom(self, creds: Credentials) -> User:
        assert self.auth is not None
        cache = self.settings.cache
        if cache is None:
            return await self._custom_uncached(creds)
        key = tuple(creds.header(name.encode()) for name in cache.cache_keys)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(key)
            return hit[1]
        user = await self._custom_uncached(creds)
        self._cache[key] = (now + cache.ttl_seconds, user)
        while len(self._cache) > cache.max_size:
            self._cache.popitem(last=False)
        return user

    async def _custom_uncached(self, creds: Credentials) -> User:
        assert self.auth is not None
        try:
            user = await handlers.authenticate(self.auth, creds)
        except KeelError:  # HandlerError too: the handler's own status
            raise
        except Exception as exc:  # the project's handler failed: the reference answers 500
            raise KeelError(f"Authentication handler failed: {exc!r}") from exc
        assert user is not None
        if self.settings.builtin and user.role is not None:
            user.permissions = sorted(roles.permissions(user.role))
        return user

    # ------------------------------------------------------------- authorization
    async def authorize(self, user: User | None, resource: str, action: str, value: Any) -> Scope:
        """The scope `user` may `action` `resource` in; Forbidden when not at all."""
        if not self.enabled or user is None:
            return EVERYTHING
        # A refusal is audited by the HTTP edge, which records one entry per request.
        return await self._decide(user, resource, action, value)

    async def _decide(self, user: User, resource: str, action: str, value: Any) -> Scope:
        builtin = self.settings.builtin
        if builtin and user.role is not None and not roles.allows(user.role, resource, action):
            raise Forbidden(f"Role '{user.role}' may not {action} {resource}")
        scope = Scope(bound=builtin, org=user.org, shared=(resource, action) in SHARED)
        handler = None
        if self.auth is not None:
            handler = handlers.find_handler(self.auth, resource, action)
        if handler is None:
            if self.auth is not None and self.settings.default == "deny":
                raise Forbidden(f"No authorization handler allows {resource}.{action}")
            return scope
        filt = await handlers.decide(handler, user, resource, action, value)
        return scope if filt is None else scope.narrowed(filt)

    def require_admin(self, user: User | None, permission: str = "audit:read") -> User:
        """Keel's administration endpoints: built-in admins of an organisation only."""
        if user is None or not self.settings.builtin:
            raise Forbidden("Administration needs built-in auth (API keys or JWT)")
        if permission not in roles.ROLES.get(user.role or "", frozenset()) or user.org is None:
            raise Forbidden("Admins only")
        return user


def _refused(
    exc: TooManyRequests, identity: Any, org: str | None, run_id: str | None
) -> AuditEntry:
    ident = None if identity is None else str(identity)
    return AuditEntry("quota.refused", "refused", ident, org, run_id, 429, exc.detail)


def build_guard(settings: AuthSettings, base_dir: Any) -> Guard:
    """The guard the settings describe (its built-in parts are added by `keel.auth.builtin`)."""
    auth = handlers.load_auth(settings.path, base_dir) if settings.path else None
    guard = Guard(settings, auth)
    guard.base_dir = base_dir
    return guard
