"""A pytest plugin loaded into the langgraph-sdk integration suite's own run (`-p keel_sdk_suite`).

`tests/integration/test_remote_graph_v3.py` of the sdist builds its `RemoteGraph`s from a module
constant `URL = "http://localhost:2024"` instead of `LANGGRAPH_INTEGRATION_URL`, which every other
module of the suite reads. Keel's test server listens on a free port (2024 may be taken), so the
constant is pointed at that URL once the module is collected; the tests themselves run unchanged.
"""

from __future__ import annotations

import os

import pytest

HARDCODED = "http://localhost:2024"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    url = os.environ["LANGGRAPH_INTEGRATION_URL"]
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and getattr(module, "URL", None) == HARDCODED:
            module.URL = url
