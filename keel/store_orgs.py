"""Organisations in the store: under built-in auth every namespace belongs to one organisation.

The store keeps each organisation's items under a reserved first label, `keel:org:<org>` (the
organisation id percent-encoded; `keel:org` for users without one). `OrgStore` is one
organisation's view of the `KeelStore`: it adds that label to every namespace an operation
names and strips it from every namespace it returns, so the `/store` API and the `BaseStore` a
graph gets during a run see only their organisation's items, vector search included (the label
is a namespace prefix, which the SQL and the vector index already restrict to). A namespace
whose first label is reserved is refused (422): no one addresses another organisation's items.

Without organisations the store is used as it is; items written then under a `keel:org:<org>`
namespace become that organisation's once organisations are on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from keel.auth.user import User, run_user
from keel.errors import InvalidInput
from keel.store import KeelStore, check_op, select_namespaces

ORG_LABEL = "keel:org"
Namespace = tuple[str, ...]


def org_label(org: str | None) -> str:
    """The first label of an organisation's namespaces (no `.`, never empty)."""
    if org is None:
        return ORG_LABEL
    return f"{ORG_LABEL}:{quote(org, safe='').replace('.', '%2E')}"


def reserved(label: str) -> bool:
    return label == ORG_LABEL or label.startswith(ORG_LABEL + ":")


def check_unreserved(namespace: Sequence[str], what: str = "namespace") -> None:
    if namespace and isinstance(namespace[0], str) and reserved(namespace[0]):
        raise InvalidInput(
            f"{what}: a first label '{ORG_LABEL}' or '{ORG_LABEL}:...' is reserved for "
            f"organisations, got {list(namespace)!r}"
        )


def run_org(run: Mapping[str, Any]) -> str | None:
    """A run's organisation: its `org` column, else its user's (`langgraph_auth_user`)."""
    if run.get("org") is not None:
        return str(run["org"])
    org = run_user(run).get("org")
    return None if org is None else str(org)


def for_org(store: KeelStore, org: str | None) -> BaseStore:
    """One organisation's view of the store, one object per org."""
    view = store.org_views.get(org)
    if view is None:
        if len(store.org_views) >= 1024:
            store.org_views.clear()
        view = store.org_views[org] = OrgStore(store, org)
    return view


def for_user(store: KeelStore, user: User | None, orgs: bool) -> BaseStore:
    """The store as `user` may use it: their organisation's when organisations are on."""
    return for_org(store, None if user is None else user.org) if orgs else store


def for_run(store: KeelStore, run: Mapping[str, Any], orgs: bool) -> BaseStore:
    """The store a run's graph gets: its organisation's when organisations are on."""
    return for_org(store, run_org(run)) if orgs else store


class OrgStore(BaseStore):
    """One organisation's view of the store (see the module docstring)."""

    supports_ttl = True

    def __init__(self, store: KeelStore, org: str | None) -> None:
        self.store = store
        self.org = org
        self.label = org_label(org)
        self.ttl_config = store.ttl_config

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        return self._results(ops, self.store.batch([self._inner(op) for op in ops]))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        return self._results(ops, await self.store.abatch([self._inner(op) for op in ops]))

    # ------------------------------------------------------------------ in
    def _inner(self, op: Op) -> Op:
        check_op(op)  # LangGraph's rules on the namespace as the caller wrote it
        if isinstance(op, GetOp):
            check_unreserved(op.namespace)
            return op._replace(namespace=(self.label, *op.namespace))
        if isinstance(op, PutOp):
            check_unreserved(op.namespace)
            return op._replace(namespace=(self.label, *op.namespace))
        if isinstance(op, SearchOp):
            check_unreserved(op.namespace_prefix, "namespace_prefix")
            return op._replace(namespace_prefix=(self.label, *op.namespace_prefix))
        if isinstance(op, ListNamespacesOp):
            return self._listing(op)
        raise InvalidInput(f"unknown store operation {type(op).__name__}")

    def _listing(self, op: ListNamespacesOp) -> ListNamespacesOp:
        """All of the organisation's namespaces under the op's first prefix condition; the
        op's own conditions, depth and page apply once the label is stripped (`_results`)."""
        fixed: Namespace = ()
        for cond in op.match_conditions or ():
            if cond.match_type == "prefix":
                check_unreserved(tuple(cond.path), "prefix")
                fixed = fixed or tuple(cond.path)
        return ListNamespacesOp(
            match_conditions=(MatchCondition("prefix", (self.label, *fixed)),),
            max_depth=None,
            limit=sys.maxsize,
            offset=0,
        )

    # ------------------------------------------------------------------ out
    def _results(self, ops: list[Op], results: list[Result]) -> list[Result]:
        out: list[Result] = []
        for op, result in zip(ops, results, strict=True):
            if isinstance(op, GetOp) and isinstance(result, Item):
                out.append(_item(result))
            elif isinstance(op, SearchOp) and isinstance(result, list):
                out.append([_search_item(i) for i in result if isinstance(i, SearchItem)])
            elif isinstance(op, ListNamespacesOp) and isinstance(result, list):
                found = {ns[1:] for ns in result if isinstance(ns, tuple) and ns[1:]}
                out.append(select_namespaces(found, op))
            else:
                out.append(result)
        return out


def _item(item: Item) -> Item:
    return Item(
        value=item.value,
        key=item.key,
        namespace=item.namespace[1:],
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _search_item(item: SearchItem) -> SearchItem:
    return SearchItem(
        namespace=item.namespace[1:],
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=item.score,
    )
