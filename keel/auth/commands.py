"""`keel keys create|list|revoke` and `keel audit`: administration straight on the database.

They open the database the server uses (`--config`, `--database`) without its graphs, workers
or store index. On SQLite they share the file with a running server (WAL); the server sees a
key change on its next request (the file's `data_version`). On PostgreSQL a change is announced
to every server with NOTIFY.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

from keel.auth.audit import AuditQuery, parse_since, read_entries, record_key_change
from keel.auth.keys import ApiKey, KeyService
from keel.errors import InvalidInput
from keel.settings import Settings
from keel.storage import open_for_admin

KEY_COLUMNS = (
    "key_id", "name", "org", "role", "created_at", "expires_at", "revoked_at", "last_used_at"
)  # fmt: skip
AUDIT_COLUMNS = (
    "id", "at", "identity", "org", "action", "resource_id", "outcome", "status", "detail"
)  # fmt: skip


def actor() -> str:
    """Who `keel keys` acts as, in the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli"


async def keys_command(settings: Settings, args: Any) -> None:
    storage = await open_for_admin(settings)
    try:
        service = KeyService(storage, audit=record_key_change)
        if args.keys_command == "create":
            key, token = await service.create(
                args.org, args.role, args.name, args.expires, actor=actor()
            )
            _created(key, token, settings, args.json)
        elif args.keys_command == "list":
            keys = await service.keys(args.org)
            _print_rows([k.view() for k in keys], KEY_COLUMNS, args.json)
        else:
            key = await service.revoke(args.key_id, actor=actor())
            print(f"revoked {key.key_id} (org {key.org}) at {key.revoked_at}")
    finally:
        await storage.close()


def _created(key: ApiKey, token: str, settings: Settings, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"key": token, **key.view()}))
    else:
        print(token)
    print(
        f"API key {key.key_id} for org {key.org!r}, role {key.role!r}"
        + (f", expires {key.expires_at}" if key.expires_at else "")
        + ". It is shown once: store it now.",
        file=sys.stderr,
    )
    if not settings.auth.api_keys:
        print(
            'note: the config does not set "auth": {"api_keys": true}; '
            "the server accepts no API key until it does",
            file=sys.stderr,
        )


async def audit_command(settings: Settings, args: Any) -> None:
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    query = AuditQuery(
        org=args.org,
        since=parse_since(args.since) if args.since else None,
        outcome=args.outcome,
        limit=args.limit,
    )
    storage = await open_for_admin(settings)
    try:
        async with storage.read() as tx:
            rows = await read_entries(tx, query)
    finally:
        await storage.close()
    _print_rows(rows, AUDIT_COLUMNS, args.json)


def _print_rows(rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
