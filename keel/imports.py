"""Loading user code named in the config: `"./file.py:attr"` (relative to the config file's
folder) or `"package.module:attr"` — graphs, and the store's embedding functions."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from keel.errors import ConfigError


def import_file(path: Path, error: type[ConfigError] = ConfigError) -> ModuleType:
    """Import a Python file once per process, under a private module name."""
    name = f"keel_user_graph_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise error(f"cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise error(f"importing {str(path)!r} failed: {exc!r}") from exc
    return module


def load_attr(
    spec: str, base_dir: Path, what: str, error: type[ConfigError] = ConfigError
) -> Any:
    """The attribute `spec` names; failures raise `error` with a message starting `what`."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise error(f"{what}: expected 'file.py:attr', got {spec!r}")
    if target.endswith(".py") or "/" in target:
        path = (base_dir / target).resolve()
        if not path.is_file():
            raise error(f"{what}: file {target!r} not found")
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))  # it may import its neighbours
        module = import_file(path, error)
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise error(f"{what}: importing {target!r} failed: {exc!r}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise error(f"{what}: {target!r} has no {attr!r}") from exc
