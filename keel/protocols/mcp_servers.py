"""MCP servers used by graphs: the `mcp_servers` section of keel.json as LangChain tools.

    from keel.protocols import mcp_servers
    tools = await mcp_servers.tools("notes")  # inside a run's graph (a node)

`McpServers` is the process's service (built by the Runtime when the section is configured). Each
server gets one MCP session per process, opened on first use (a stdio server is started then) and
shared by every run; a session found broken is opened again on the next use (a stdio server that
died is restarted, an HTTP one initialised anew); `close()` (Runtime.stop) ends them. The tools
are `langchain-mcp-adapters` tools bound to that session through `_Session`; a call that cannot
reach its server is a ToolException, which the tool turns into an error ToolMessage for the model
(never a crashed run). Sessions are the official `mcp` SDK's `ClientSession`, opened by
`langchain_mcp_adapters.sessions.create_session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import timedelta
from typing import Any, cast

import anyio
from langchain_core.tools import BaseTool, ToolException
from langchain_mcp_adapters.sessions import Connection, create_session
from langchain_mcp_adapters.tools import convert_mcp_tool_to_langchain_tool
from mcp import ClientSession
from mcp.shared.exceptions import McpError
from mcp.types import CONNECTION_CLOSED, CallToolResult, ErrorData, PaginatedRequestParams
from mcp.types import Tool as McpTool

from keel.errors import ConfigError
from keel.settings.mcp_servers import McpServerSpec, StdioServer

log = logging.getLogger("keel.mcp_servers")

_ACTIVE: contextvars.ContextVar[McpServers | None] = contextvars.ContextVar(
    "keel_mcp_servers", default=None
)
# The SDK's error for a request on a session a streamable-HTTP server no longer knows (404).
SESSION_TERMINATED = 32600
# Errors of a request that never left: the session's streams were already closed.
NOT_SENT = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
CLOSE_SECONDS = 5.0  # per server at shutdown (a stdio server gets 2 s to exit, then SIGTERM)


def connection(spec: McpServerSpec, environ: Mapping[str, str]) -> Connection:
    """The langchain-mcp-adapters connection of a configured server, templates filled."""
    if isinstance(spec, StdioServer):
        return {
            "transport": "stdio",
            "command": spec.command,
            "args": list(spec.args),
            "env": spec.resolved_env(environ),
            "cwd": str(spec.cwd) if spec.cwd is not None else None,
        }
    return {
        "transport": "streamable_http",
        "url": spec.url,
        "headers": spec.resolved_headers(environ),
        "timeout": spec.timeout_seconds,
    }


def reason(exc: BaseException) -> str:
    """A one-line account of a failure (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, McpError) else f"{type(exc).__name__}: {text}"


class ServerConnection:
    """One configured server: its session (opened on demand, reopened once broken) and the
    definitions of its tools, listed at each connection."""

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.definitions: dict[str, McpTool] = {}
        self.connects = 0  # sessions opened so far
        self._session: ClientSession | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.spec.timeout_seconds)

    async def session(self) -> tuple[ClientSession, asyncio.Task[None]]:
        """The open session and the task holding it; connects first when there is none, or it
        has ended. Raises a ToolException when the server cannot be reached."""
        async with self._lock:
            if self._session is None or self._holder is None or self._holder.done():
                await self._connect()
            assert self._session is not None and self._holder is not None
            return self._session, self._holder

    def broken(self, session: ClientSession) -> None:
        """`session` failed: the next use connects again."""
        if self._session is session:
            self._session = None

    async def _connect(self) -> None:
        await self.close()
        ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        # A context of its own: the session outlives the run that happened to open it.
        self._holder = asyncio.create_task(
            self._hold(ready, self._stop),
            name=f"keel-mcp-{self.name}",
            context=contextvars.Context(),
        )
        try:
            async with asyncio.timeout(self.spec.timeout_seconds):
                self._session = await asyncio.shield(ready)
        except Exception as exc:
            if self._holder is not None:
                self._holder.cancel()  # a server that never answered gets no grace
            await self.close()
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {self.spec.timeout_seconds:g} s")
            raise unavailable(self.name, exc) from exc
        self.connects += 1
        log.info("MCP server %r: connected (%d tools)", self.name, len(self.definitions))

    async def _hold(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        """The task that owns the session (anyio scopes are entered and left in one task)."""
        try:
            async with create_session(connection(self.spec, os.environ)) as session:
                await session.initialize()
                self.definitions = await list_all(session)
                ready.set_result(session)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP server %r: connection lost (%s)", self.name, reason(exc))

    async def close(self) -> None:
        """End the session (a stdio server's process exits)."""
        holder, self._holder, self._session = self._holder, None, None
        if holder is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait((holder,), timeout=CLOSE_SECONDS)
        if not done:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)

    async def call(self, name: str, arguments: dict[str, Any] | None) -> CallToolResult:
        """Call a tool. A request the server never got is sent again on a new session; one lost
        in flight is sent again only to a tool the server marks read-only or idempotent."""
        for attempt in (1, 2):
            session, holder = await self.session()
            try:
                call = session.call_tool(name, arguments, read_timeout_seconds=self.timeout)
                return await unless_lost(call, holder)
            except NOT_SENT as exc:
                self.broken(session)
                if attempt == 2:
                    raise unavailable(self.name, exc) from exc
            except McpError as exc:
                code = exc.error.code
                if code not in (CONNECTION_CLOSED, SESSION_TERMINATED):  # the server's answer
                    raise ToolException(f"MCP server {self.name!r}: {exc.error.message}") from exc
                self.broken(session)
                lost = code == CONNECTION_CLOSED  # else unknown to a restarted server: not run
                if attempt == 2 or (lost and not self.repeatable(name)):
                    raise unavailable(self.name, exc, lost=lost) from exc
        raise AssertionError("unreachable")

    def repeatable(self, tool: str) -> bool:
        definition = self.definitions.get(tool)
        hints = definition.annotations if definition is not None else None
        return hints is not None and bool(hints.readOnlyHint or hints.idempotentHint)


async def unless_lost(
    call: Coroutine[Any, Any, CallToolResult], holder: asyncio.Task[None]
) -> CallToolResult:
    """`call`'s result, or CONNECTION_CLOSED as soon as the session's task ends (the SDK leaves
    a request in flight on a streamable-HTTP session whose transport failed to its timeout)."""
    task = asyncio.ensure_future(call)
    try:
        await asyncio.wait((task, holder), return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()  # no-op once done; a cancelled run cancels its call
    if task.done() and not task.cancelled():
        return task.result()
    raise McpError(ErrorData(code=CONNECTION_CLOSED, message="Connection closed"))


def unavailable(server: str, exc: BaseException, lost: bool = False) -> ToolException:
    what = "the connection was lost during the call" if lost else "cannot reach it"
    return ToolException(
        f"MCP server {server!r} is unavailable: {what} ({reason(exc)}). Keel connects again "
        "on the next call."
    )


async def list_all(session: ClientSession) -> dict[str, McpTool]:
    """Every tool of the server, following its pages."""
    tools: dict[str, McpTool] = {}
    cursor: str | None = None
    for _ in range(1000):
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.update((t.name, t) for t in page.tools)
        cursor = page.nextCursor
        if not cursor:
            break
    return tools


class _Session:
    """What a langchain-mcp-adapters tool calls (`call_tool`, as on a ClientSession): the
    server's current session, reconnecting when needed."""

    def __init__(self, server: ServerConnection) -> None:
        self.server = server

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, **_: Any
    ) -> CallToolResult:
        return await self.server.call(name, arguments)


def as_tool(server: ServerConnection, definition: McpTool) -> BaseTool:
    """A LangChain tool calling `definition` on `server`; failures are error ToolMessages."""
    tool = convert_mcp_tool_to_langchain_tool(
        cast(ClientSession, _Session(server)), definition, server_name=server.name
    )
    tool.handle_tool_error = tool_error(tool.handle_tool_error)
    return tool


def tool_error(adapters: Any) -> Callable[[ToolException], Any]:
    """The adapters' handler (the server's own `isError` results, content kept) extended to
    Keel's connection errors, which become the error message itself."""

    def handle(error: ToolException) -> Any:
        if callable(adapters):
            with contextlib.suppress(ToolException):  # it re-raises errors not its own
                return adapters(error)
        return str(error)

    return handle


class McpServers:
    """The process's MCP servers (`mcp_servers` in keel.json), shared by all runs."""

    def __init__(self, specs: Mapping[str, McpServerSpec]) -> None:
        self.servers = {name: ServerConnection(spec) for name, spec in specs.items()}
        self._tools: dict[str, list[BaseTool]] = {}

    async def tools(self, *names: str) -> list[BaseTool]:
        """The tools of the named servers (every configured one when none is named). A server
        that cannot be reached adds none (a warning says why); it is tried again next time."""
        unknown = sorted(set(names) - set(self.servers))
        if unknown:
            raise ConfigError(
                f"MCP servers {unknown} are not configured (mcp_servers in keel.json has "
                f"{sorted(self.servers)})"
            )
        found: list[BaseTool] = []
        for name in names or tuple(self.servers):
            found.extend(await self._server_tools(self.servers[name]))
        return found

    async def _server_tools(self, server: ServerConnection) -> list[BaseTool]:
        if server.name not in self._tools:
            try:
                await server.session()
            except ToolException as exc:
                log.warning("%s", exc)
                return []
            self._tools[server.name] = [as_tool(server, d) for d in server.definitions.values()]
        return self._tools[server.name]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within this block (a run's graph), `tools()` resolves through this service."""
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.servers.values()))


async def tools(*names: str) -> list[BaseTool]:
    """The LangChain tools of the named MCP servers of keel.json (all when none is named), for
    the run executing (inside a graph node; see docs/protocols.md for factories)."""
    service = _ACTIVE.get()
    if service is None:
        raise ConfigError(
            "keel.protocols.mcp_servers.tools(): no MCP servers here (add an `mcp_servers` "
            "section to keel.json; only a run's graph executed by Keel has them)"
        )
    return await service.tools(*names)
