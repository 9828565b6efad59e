"""The `sandbox` config section, and the start-up check: no bubblewrap, no start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel.errors import ConfigError, SandboxUnavailable
from keel.runtime import Runtime
from keel.sandbox import check_available
from keel.settings import Settings, load_settings
from keel.settings.sandbox import SandboxLimits, SandboxSettings


def config(tmp_path: Path, section: object) -> Path:
    path = tmp_path / "keel.json"
    path.write_text(json.dumps({"graphs": {}, "sandbox": section}))
    return path


def test_the_section_sets_root_and_limits(tmp_path: Path) -> None:
    s = load_settings(config(tmp_path, {"root": "ws", "cpu_seconds": 5, "wall_seconds": 2.5}))
    assert s.sandbox == SandboxSettings(
        root=(tmp_path / "ws").resolve(),
        limits=SandboxLimits(cpu_seconds=5, wall_seconds=2.5),
    )
    s = load_settings(config(tmp_path, {}))
    assert s.sandbox is not None and s.sandbox.root == (tmp_path / ".keel/workspaces").resolve()
    no_section = tmp_path / "plain.json"
    no_section.write_text(json.dumps({"graphs": {}}))
    assert load_settings(no_section).sandbox is None


def test_keel_sandbox_root_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_SANDBOX_ROOT", str(tmp_path / "host-b"))
    s = load_settings(config(tmp_path, {"root": "ws", "cpu_seconds": 5}))
    assert s.sandbox is not None
    assert (s.sandbox.root, s.sandbox.limits.cpu_seconds) == ((tmp_path / "host-b").resolve(), 5)
    no_section = tmp_path / "plain.json"
    no_section.write_text(json.dumps({"graphs": {}}))
    assert load_settings(no_section).sandbox is None  # no section: the variable turns nothing on


def test_sync_is_auto_unless_set(tmp_path: Path) -> None:
    s = load_settings(config(tmp_path, {}))
    assert s.sandbox is not None and (s.sandbox.sync, s.sandbox.sync_max_bytes) == (None, 64 << 20)
    s = load_settings(config(tmp_path, {"sync": False, "sync_max_bytes": 1024}))
    assert s.sandbox is not None and (s.sandbox.sync, s.sandbox.sync_max_bytes) == (False, 1024)
    s = load_settings(config(tmp_path, {"sync": "auto"}))
    assert s.sandbox is not None and s.sandbox.sync is None


@pytest.mark.parametrize(
    "section",
    [
        [],
        {"network": True},
        {"processes": 0},
        {"memory_bytes": "1G"},
        {"root": ""},
        {"sync": "yes"},
        {"sync_max_bytes": 0},
    ],
)
def test_bad_sections_are_refused(tmp_path: Path, section: object) -> None:
    with pytest.raises(ConfigError):
        load_settings(config(tmp_path, section))


def test_without_bubblewrap_keel_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_available()  # here, bubblewrap works
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on the PATH
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        check_available()
    settings = Settings(base_dir=tmp_path, sandbox=SandboxSettings(root=tmp_path / "ws"))
    with pytest.raises(SandboxUnavailable):
        Runtime(settings)
    Runtime(Settings(base_dir=tmp_path, database=f"sqlite:///{tmp_path}/k.db"))  # no section
