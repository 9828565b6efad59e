"""The distribution is `keel-runtime` (on PyPI, `keel` is an unrelated project); the import
package and the command stay `keel`."""

from __future__ import annotations

from importlib.metadata import distribution

import keel


def test_distribution_name_command_and_version() -> None:
    dist = distribution("keel-runtime")
    assert dist.version == keel.__version__
    scripts = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
    assert scripts == {"keel": "keel.cli:main"}
