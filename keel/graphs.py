"""Loading user graphs from config specs, and the system assistants that front them."""

from __future__ import annotations

import contextlib
import inspect
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import AccessContext, ServerRuntime, _ExecutionRuntime, _ReadRuntime

from keel.auth.user import User
from keel.errors import GraphLoadError, InvalidInput, NotFound
from keel.imports import load_attr
from keel.settings import GraphSpec

Graph = Pregel[Any, Any, Any, Any]
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
RUNTIME_TYPE_NAMES = ("ServerRuntime", "_ExecutionRuntime", "_ReadRuntime")


def system_assistant_id(graph_id: str) -> str:
    """The well-known uuid5 id of a graph's system assistant (matches the reference server)."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


def add_local_dependencies(dependencies: list[str], base_dir: Path) -> None:
    """Make local dependency folders (".", "./src", ...) importable, as an install would.

    Package requirements ("langchain-openai>=1") are not installed by Keel: they must already be
    installed in the environment Keel runs in.
    """
    for dep in dependencies:
        if not dep.startswith((".", "/")):
            continue
        folder = (base_dir / dep).resolve()
        if not folder.is_dir():
            raise GraphLoadError(f"dependency folder {dep!r} not found")
        for candidate in (folder / "src", folder):
            if candidate.is_dir() and str(candidate) not in sys.path:
                sys.path.insert(0, str(candidate))


class LoadedGraph:
    """A registered graph: either a compiled graph or a factory producing one per run."""

    def __init__(self, spec: GraphSpec, obj: Any) -> None:
        self.spec = spec
        self.graph_id = spec.graph_id
        self._obj = obj
        self.is_factory = not isinstance(obj, Pregel)
        self._bound: tuple[BaseCheckpointSaver[Any] | None, BaseStore, Graph] | None = None
        self._context_cache: dict[Any, frozenset[str]] = {}
        if self.is_factory and not callable(obj):
            raise GraphLoadError(
                f"graph {spec.graph_id!r}: {type(obj).__name__} is neither a compiled graph "
                "nor a factory"
            )

    @property
    def assistant_id(self) -> str:
        return system_assistant_id(self.graph_id)

    def default_name(self) -> str:
        name = getattr(self._obj, "name", None) if not self.is_factory else None
        return name if isinstance(name, str) and name != "LangGraph" else self.graph_id

    @contextlib.asynccontextmanager
    async def build(
        self,
        config: RunnableConfig | dict[str, Any],
        checkpointer: BaseCheckpointSaver[Any] | None,
        store: BaseStore,
        access: AccessContext = "threads.read",
        context: Any = None,
        user: User | None = None,
    ) -> AsyncIterator[Graph]:
        """Yield a graph bound to Keel's checkpointer and store.

        `access` says why the graph is needed; a factory asking for a `ServerRuntime` gets it
        (with the run's `context` only when executing, `threads.create_run`), and `user`: the
        requesting user, or the one a run carries (None without auth).
        """
        if not self.is_factory:
            # A compiled graph is bound once per (checkpointer, store) and reused.
            if self._bound is None or self._bound[:2] != (checkpointer, store):
                bound = self._obj.copy(update={"checkpointer": checkpointer, "store": store})
                self._bound = (checkpointer, store, bound)
            yield self._bound[2]
            return
        runtime = server_runtime(access, store, context, user)
        async with self._instantiate(cast(RunnableConfig, config), runtime) as graph:
            yield graph.copy(update={"checkpointer": checkpointer, "store": store})

    def run_context(self, graph: Graph, context: Any) -> Any:
        """The context a run passes to the graph: the run's own (an empty one too, so LangGraph
        builds a context schema's defaults), without keys the graph's context schema lacks."""
        if not isinstance(context, dict) or not context:
            return context
        known = self._context_keys(graph)
        if not known:
            return context
        return {key: value for key, value in context.items() if key in known}

    def _context_keys(self, graph: Graph) -> frozenset[str]:
        """Property names of the graph's context schema (none when it has no usable schema),
        computed once per schema type."""
        schema_type = getattr(graph, "context_schema", None)
        if schema_type is None:
            return frozenset()
        if schema_type not in self._context_cache:
            schema = _schema(graph.get_context_jsonschema)
            properties = schema.get("properties") if isinstance(schema, dict) else None
            self._context_cache[schema_type] = frozenset(properties or ())
        return self._context_cache[schema_type]

    @contextlib.asynccontextmanager
    async def _instantiate(
        self, config: RunnableConfig, runtime: ServerRuntime[Any]
    ) -> AsyncIterator[Graph]:
        if not self.is_factory:
            yield self._obj
            return
        factory: Callable[..., Any] = self._obj
        args = factory_args(factory, config, runtime)
        result = factory(*args)
        if hasattr(result, "__aenter__"):
            async with result as graph:
                yield _check_graph(self.graph_id, graph)
            return
        if hasattr(result, "__enter__"):
            with result as graph:
                yield _check_graph(self.graph_id, graph)
            return
        if inspect.isawaitable(result):
            result = await result
        yield _check_graph(self.graph_id, result)


def server_runtime(
    access: AccessContext, store: BaseStore, context: Any = None, user: User | None = None
) -> ServerRuntime[Any]:
    """The `ServerRuntime` a factory receives: execution variant only for `threads.create_run`."""
    if access == "threads.create_run":
        return _ExecutionRuntime(access_context=access, user=user, store=store, context=context)
    return _ReadRuntime(access_context=access, user=user, store=store)


def _wants_runtime(param: inspect.Parameter) -> bool:
    annotation = param.annotation
    if annotation is param.empty:
        return param.name == "runtime"
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return any(name in text for name in RUNTIME_TYPE_NAMES)


def factory_args(
    fn: Callable[..., Any], config: RunnableConfig, runtime: ServerRuntime[Any]
) -> list[Any]:
    """Positional arguments for a graph factory: the runtime where annotated so, else the config."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return [runtime if _wants_runtime(p) else config for p in required]


def _check_graph(graph_id: str, graph: Any) -> Graph:
    if not isinstance(graph, Pregel):
        raise GraphLoadError(f"factory of graph {graph_id!r} returned {type(graph).__name__}")
    return graph


class GraphRegistry:
    """All graphs of a deployment, keyed by graph id."""

    def __init__(self, graphs: dict[str, LoadedGraph]) -> None:
        self._graphs = graphs

    @classmethod
    def load(
        cls, specs: list[GraphSpec], base_dir: Path, dependencies: list[str] | None = None
    ) -> GraphRegistry:
        add_local_dependencies(dependencies or [], base_dir)
        graphs = {}
        for spec in specs:
            what = f"graph {spec.graph_id!r}"
            graphs[spec.graph_id] = LoadedGraph(
                spec, load_attr(spec.path, base_dir, what, GraphLoadError)
            )
        return cls(graphs)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._graphs

    def __iter__(self) -> Any:
        return iter(self._graphs.values())

    def get(self, graph_id: str) -> LoadedGraph:
        try:
            return self._graphs[graph_id]
        except KeyError:
            raise NotFound(f"Graph '{graph_id}' not found") from None

    def ids(self) -> list[str]:
        return list(self._graphs)

    def invalid_assistant(self, value: str) -> InvalidInput:
        choices = ", ".join(f"'{g}'" for g in self._graphs)
        return InvalidInput(
            f"Invalid assistant: '{value}'. Must be either: - A valid assistant UUID, or "
            f"- One of the registered graphs: {choices}"
        )


def _schema(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _typeddict_compat(tp: Any) -> Any:
    """A `typing.TypedDict` rebuilt as `typing_extensions.TypedDict`.

    Before Python 3.12 pydantic refuses `typing.TypedDict` (the form LangGraph's docs use), so
    without this every such graph would report null schemas.
    """
    import typing_extensions

    if not typing_extensions.is_typeddict(tp):
        return tp
    hints = typing_extensions.get_type_hints(tp)
    required = getattr(tp, "__required_keys__", frozenset(hints))
    fields = {
        key: (typing_extensions.Required if key in required else typing_extensions.NotRequired)[
            hint
        ]
        for key, hint in hints.items()
    }
    return typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[operator]


def _builder_schema(graph: Graph, kind: str, method: Callable[[], Any] | None) -> Any:
    """The JSON schema of the builder's `<kind>_schema`, tolerant of `typing.TypedDict`."""
    from pydantic import TypeAdapter

    if method is not None:
        try:
            return method()
        except Exception:
            pass
    typ = getattr(getattr(graph, "builder", None), f"{kind}_schema", None)
    if typ is None:
        return None
    return _schema(lambda: TypeAdapter(_typeddict_compat(typ)).json_schema())


def graph_schemas(graph_id: str, graph: Graph) -> dict[str, Any]:
    """JSON schemas of a graph's input, output, state, config and context."""
    output_schema = _builder_schema(graph, "output", graph.get_output_jsonschema)
    return {
        "graph_id": graph_id,
        "input_schema": _builder_schema(graph, "input", graph.get_input_jsonschema),
        "output_schema": output_schema,
        "state_schema": _builder_schema(graph, "state", None) or output_schema,
        "config_schema": _schema(graph.get_config_jsonschema),
        "context_schema": _schema(graph.get_context_jsonschema),
    }


def drawable(graph: Graph, xray: int | bool) -> dict[str, Any]:
    """LangGraph's drawable-graph JSON, with `data.id` removed from every node."""
    data = graph.get_graph(xray=xray).to_json()
    for node in data.get("nodes", []):
        if isinstance(node.get("data"), dict):
            node["data"].pop("id", None)
    return data
