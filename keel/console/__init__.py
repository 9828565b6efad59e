"""The web console's static files (`static/`), served at `/console` by keel/http/console.py."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
