"""Config files: supported keys honoured, unsupported ones refused by name."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from keel.errors import ConfigError
from keel.settings import (
    HeaderRules,
    HttpSettings,
    IndexSettings,
    StoreSettings,
    TTLSettings,
    load_settings,
)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(data))
    return path


def test_graphs_env_dict_and_cors(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        {
            "graphs": {"a": "./a.py:graph", "b": {"path": "pkg.mod:g", "description": "B"}},
            "env": {"X": 1},
            "http": {"cors": {"allow_origins": ["https://example.com"]}},
            "dependencies": ["."],
        },
    )
    s = load_settings(cfg)
    assert [(g.graph_id, g.path, g.description) for g in s.graphs] == [
        ("a", "./a.py:graph", None),
        ("b", "pkg.mod:g", "B"),
    ]
    assert s.env == {"X": "1"}
    assert s.http.cors == {"allow_origins": ["https://example.com"]}
    assert s.base_dir == tmp_path.resolve()


def test_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=1\nB=two\n")
    s = load_settings(write(tmp_path, {"graphs": {}, "env": ".env"}))
    assert s.env == {"A": "1", "B": "two"}


def test_missing_env_file_reads_as_empty_with_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The new-langgraph-project template names a .env it does not ship; the reference starts.
    with caplog.at_level(logging.WARNING, logger="keel.settings"):
        s = load_settings(write(tmp_path, {"graphs": {}, "env": ".env"}))
    assert s.env == {}
    assert [r.getMessage() for r in caplog.records] == [
        f"env file {str(tmp_path.resolve() / '.env')!r} not found; starting without its variables"
    ]


def test_schema_key_is_silent_and_quiet_reports_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write(tmp_path, {"$schema": "https://langgra.ph/schema.json", "graphs": {}})
    with caplog.at_level(logging.DEBUG, logger="keel.settings"):
        load_settings(cfg)
    assert caplog.records == []
    noisy = write(tmp_path, {"graphs": {}, "env": ".env", "image_distro": "wolfi"})
    with caplog.at_level(logging.DEBUG, logger="keel.settings"):
        load_settings(noisy, quiet=True)  # the reloading child of `keel dev`
    assert caplog.records == []


@pytest.mark.parametrize("key", ["ui", "nonsense"])
def test_unsupported_key_is_an_error_naming_it(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(write(tmp_path, {"graphs": {}, key: {}}))


def test_unsupported_http_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="logging_headers"):
        load_settings(write(tmp_path, {"graphs": {}, "http": {"logging_headers": {}}}))


def test_http_section(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, {"graphs": {}})).http == HttpSettings()
    http = {
        "app": "./app.py:app",
        "mount_prefix": "/my-deployment/api/",
        **{f"disable_{s}": True for s in ("assistants", "webhooks", "mcp", "a2a", "ui", "metrics")},
        "disable_threads": False,
        "metrics_public": True,
        "configurable_headers": {"include": ["x-*"], "exclude": ["x-secret"]},
        "middleware_order": "auth_first",
        "enable_custom_route_auth": True,
    }
    s = load_settings(write(tmp_path, {"graphs": {}, "http": http})).http
    assert (s.app, s.mount_prefix) == ("./app.py:app", "/my-deployment/api")
    assert s.disabled == {"assistants", "webhooks", "mcp", "a2a", "ui", "metrics"}
    assert s.enabled("threads") and not s.enabled("assistants")
    assert s.metrics_public and not HttpSettings().metrics_public
    assert HttpSettings().enabled("metrics")  # on by default
    assert s.configurable_headers == HeaderRules(("x-*",), ("x-secret",))
    assert (s.middleware_order, s.enable_custom_route_auth) == ("auth_first", True)


@pytest.mark.parametrize(
    ("http", "match"),
    [
        ({"app": "./app.py"}, "http.app"),
        ({"app": 3}, "http.app"),
        ({"mount_prefix": "api"}, "mount_prefix"),
        ({"mount_prefix": "/a b"}, "mount_prefix"),
        ({"disable_threads": "yes"}, "disable_threads"),
        ({"disable_everything": True}, "disable_everything"),
        ({"middleware_order": "sometimes"}, "middleware_order"),
        ({"enable_custom_route_auth": 1}, "enable_custom_route_auth"),
        ({"disable_metrics": "yes"}, "disable_metrics"),
        ({"metrics_public": 1}, "metrics_public"),
        ({"configurable_headers": {"includes": "x-*"}}, "includes"),
        ({"configurable_headers": {"only": ["x-*"]}}, "only"),
        ({"cors": {"allow_everything": True}}, "allow_everything"),
        ([], "http"),
    ],
)
def test_bad_http_section_is_an_error_naming_it(tmp_path: Path, http: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings(write(tmp_path, {"graphs": {}, "http": http}))


def test_configurable_headers_select() -> None:
    headers = [
        ("x-user-id", "u"),
        ("X-Tenant-Name", "t"),  # matched lower-cased, patterns too
        ("x-user-secret", "s"),
        ("user-agent", "ua"),
        ("authorization", "Bearer x"),
        ("x-api-key", "k"),
        ("x-service-key", "k"),
        ("x-tenant-id", "t"),
        ("accept", "*/*"),
    ]
    assert HeaderRules().select(headers) == {}  # nothing is copied by default
    rules = HeaderRules(includes=("X-User-*", "x-tenant*", "*-agent", "authorization", "x-*-key"))
    assert rules.select(headers) == {
        "x-user-id": "u",
        "x-tenant-name": "t",
        "x-user-secret": "s",
        "user-agent": "ua",
    }
    assert HeaderRules(("x-user-*",), ("*secret",)).select(headers) == {"x-user-id": "u"}
    assert HeaderRules(("x-user-[a-z]d",)).select([("x-user-id", "u")]) == {}  # `*` only


def test_build_keys_only_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="keel.settings"):
        load_settings(write(tmp_path, {"graphs": {}, "dockerfile_lines": ["RUN x"]}))
    assert "dockerfile_lines" in caplog.text


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "keel.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.json")


def test_env_overrides_and_synchronous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_WORKERS", "3")
    monkeypatch.setenv("KEEL_SQLITE_SYNCHRONOUS", "full")
    s = load_settings(write(tmp_path, {"graphs": {}}), port=9999)
    assert (s.workers, s.sqlite_synchronous, s.port) == (3, "FULL", 9999)
    monkeypatch.setenv("KEEL_SQLITE_SYNCHRONOUS", "sometimes")
    with pytest.raises(ConfigError, match="synchronous"):
        load_settings(write(tmp_path, {"graphs": {}}))


def test_database_urls_sqlite_or_postgres(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mysql"):
        load_settings(write(tmp_path, {"graphs": {}}), database="mysql://x")
    rel = load_settings(write(tmp_path, {"graphs": {}}), database="sqlite:///data/k.db")
    assert rel.sqlite_path == tmp_path.resolve() / "data" / "k.db"
    assert rel.backend == "sqlite"
    for url in ("postgresql://u@h:5432/db", "postgres://u@h/db"):
        pg = load_settings(write(tmp_path, {"graphs": {}}), database=url)
        assert pg.backend == "postgres"
        with pytest.raises(ConfigError, match="not a SQLite URL"):
            _ = pg.sqlite_path


def test_bad_process_settings_are_refused(tmp_path: Path) -> None:
    bads: list[dict[str, Any]] = [{"lease_seconds": 0}, {"workers": -1}, {"pool_size": 1}]
    for bad in bads:
        with pytest.raises(ConfigError, match="lease"):
            load_settings(write(tmp_path, {"graphs": {}}), **bad)


def test_store_section(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, {"graphs": {}})).store == StoreSettings()
    assert StoreSettings().index == IndexSettings(dims=256, embed=None, fields=("$",))
    store = {
        "index": {"dims": 128, "embed": "./e.py:embed", "fields": ["text", "tags[*]"]},
        "ttl": {"default_ttl": 1.5, "refresh_on_read": False, "sweep_interval_minutes": 5},
    }
    s = load_settings(write(tmp_path, {"graphs": {}, "store": store}))
    assert s.store.index == IndexSettings(128, "./e.py:embed", ("text", "tags[*]"))
    assert s.store.ttl == TTLSettings(1.5, False, 5.0)
    off = load_settings(write(tmp_path, {"graphs": {}, "store": {"index": None}}))
    assert off.store.index is None


@pytest.mark.parametrize(
    ("store", "match"),
    [
        ({"index": {"dims": 0}}, "dims"),
        ({"index": {"dims": "256"}}, "dims"),
        ({"index": {"fields": []}}, "fields"),
        ({"index": {"embed": ""}}, "embed"),
        ({"index": {"distance_type": "l2"}}, "distance_type"),
        ({"ttl": {"default_ttl": -1}}, "default_ttl"),
        ({"ttl": {"refresh_on_read": "yes"}}, "refresh_on_read"),
        ({"ttl": {"sweep_interval_minutes": 0}}, "sweep_interval_minutes"),
        ({"ttl": {"sweep": 1}}, "sweep"),
        ({"vectors": {}}, "vectors"),
        ([], "store"),
    ],
)
def test_bad_store_section_is_an_error_naming_it(
    tmp_path: Path, store: object, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings(write(tmp_path, {"graphs": {}, "store": store}))


def test_checkpointer_ttl_and_retention_are_read(tmp_path: Path) -> None:
    ttl = {"strategy": "keep_latest", "default_ttl": 30, "sweep_interval_minutes": 0.5}
    retention = {"run_events_minutes": 60, "stateless_runs_minutes": 0.5, "sweep_limit": 7}
    cfg = {"graphs": {}, "checkpointer": {"ttl": ttl}, "retention": retention}
    settings = load_settings(write(tmp_path, cfg))
    assert settings.checkpointer.ttl.strategy == "keep_latest"
    assert settings.checkpointer.ttl.for_new_thread() == {"ttl": 30.0, "strategy": "keep_latest"}
    assert settings.checkpointer.ttl.sweep_interval_minutes == 0.5
    assert settings.checkpointer.ttl.sweep_limit == 10_000
    assert settings.retention.run_events_minutes == 60
    assert settings.retention.stateless_runs_minutes == 0.5
    assert settings.retention.thread_events_minutes == 1.0
    assert settings.retention.sweep_limit == 7


def test_defaults_keep_threads_and_a_day_of_event_logs(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, {"graphs": {}}))
    assert settings.checkpointer.ttl.for_new_thread() is None
    assert settings.retention.run_events_minutes == 24 * 60


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"checkpointer": {"ttl": {"strategy": "archive"}}}, "checkpointer.ttl.strategy"),
        ({"checkpointer": {"ttl": {"default_ttl": -1}}}, "checkpointer.ttl.default_ttl"),
        ({"checkpointer": {"ttl": {"default_ttl": "1h"}}}, "checkpointer.ttl.default_ttl"),
        ({"checkpointer": {"ttl": {"default_ttl": 1e12}}}, "checkpointer.ttl.default_ttl"),
        (
            {"checkpointer": {"ttl": {"sweep_interval_minutes": 0}}},
            "checkpointer.ttl.sweep_interval_minutes",
        ),
        ({"checkpointer": {"ttl": {"sweep_limit": 0}}}, "checkpointer.ttl.sweep_limit"),
        ({"checkpointer": {"ttl": {"sweep_limit": 1.5}}}, "checkpointer.ttl.sweep_limit"),
        ({"checkpointer": {"ttl": {"max_age": 3}}}, "max_age"),
        ({"checkpointer": {"ttl": []}}, "checkpointer.ttl"),
        ({"checkpointer": {"path": "./saver.py:make"}}, "checkpointer.path"),
        ({"checkpointer": {"serde": {}}}, "serde"),
        ({"retention": {"run_events_minutes": -5}}, "retention.run_events_minutes"),
        ({"retention": {"stateless_runs_minutes": True}}, "retention.stateless_runs_minutes"),
        ({"retention": {"sweep_interval_minutes": 0}}, "retention.sweep_interval_minutes"),
        ({"retention": {"keep_forever": True}}, "keep_forever"),
        ({"retention": 5}, "retention"),
    ],
)
def test_bad_retention_config_stops_start_up_naming_the_key(
    tmp_path: Path, section: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_settings(write(tmp_path, {"graphs": {}, **section}))
