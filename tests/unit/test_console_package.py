"""The console's static files ship in the wheel: each matches a package-data pattern of
pyproject.toml, and each has a content type keel/http/console.py serves."""

from __future__ import annotations

import tomllib
from pathlib import Path

from keel.console import STATIC
from keel.http.console import TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_every_static_file_is_packaged_and_served() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["keel"]
    package = STATIC.parent.parent  # keel/
    files = [p for p in STATIC.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "app.js", "api.js", "console.css"}
    for path in files:
        relative = path.relative_to(package)
        assert any(relative.match(pattern) for pattern in patterns), relative
        assert path.suffix in TYPES, relative
