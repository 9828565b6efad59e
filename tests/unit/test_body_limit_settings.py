"""`http.max_body_bytes` and `KEEL_MAX_BODY_BYTES`: the request body limit's settings (its
behaviour on a real server: tests/e2e/test_body_limit.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel.errors import ConfigError
from keel.settings import DEFAULT_MAX_BODY_BYTES, load_settings


def config(tmp_path: Path, http: object = None) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {}} if http is None else {"graphs": {}, "http": http}))
    return path


def test_ten_mib_by_default(tmp_path: Path) -> None:
    assert DEFAULT_MAX_BODY_BYTES == 10 * 2**20
    assert load_settings(config(tmp_path)).http.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert load_settings(config(tmp_path, {})).http.max_body_bytes == DEFAULT_MAX_BODY_BYTES


def test_the_file_sets_it_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, {"max_body_bytes": 4096})
    assert load_settings(path).http.max_body_bytes == 4096
    monkeypatch.setenv("KEEL_MAX_BODY_BYTES", "1024")
    assert load_settings(path).http.max_body_bytes == 1024


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10MB", True, None])
def test_a_limit_that_is_not_a_positive_integer_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"http\.max_body_bytes"):
        load_settings(config(tmp_path, {"max_body_bytes": bad}))


@pytest.mark.parametrize("bad", ["0", "-5", "ten", "1e6"])
def test_a_bad_environment_value_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("KEEL_MAX_BODY_BYTES", bad)
    with pytest.raises(ConfigError, match="KEEL_MAX_BODY_BYTES"):
        load_settings(config(tmp_path))
