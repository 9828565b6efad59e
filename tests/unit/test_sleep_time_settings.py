"""The `background` config section (keel/settings/sleep_time.py) and the lane option
(keel/lanes.py): good values read, bad ones refused with a message naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keel.background.triggers import check_graphs
from keel.errors import ConfigError, InvalidInput
from keel.graphs import GraphRegistry
from keel.lanes import BACKGROUND, INTERACTIVE, LaneSlots, lane_of
from keel.settings import load_settings
from keel.settings.sleep_time import background_settings
from tests.conftest import GRAPHS_CONFIG


def write(tmp_path: Path, background: Any) -> Path:
    path = tmp_path / "keel.json"
    path.write_text(json.dumps({"graphs": {}, "background": background}))
    return path


def test_a_full_section_is_read(tmp_path: Path) -> None:
    raw = {
        "reserved_interactive_share": 0.5,
        "triggers": {
            "idle": {"graph": "g", "watch": ["a"], "on_idle": 30, "max_seconds": 5},
            "count": {"graph": "g", "every_n_runs": 3, "input": "state"},
            "nightly": {
                "graph": "g",
                "schedule": "0 3 * * *",
                "select": {"namespaces": {"prefix": ["memories"]}, "limit": 5},
                "max_runs_per_thread_per_day": 2,
            },
        },
    }
    settings = load_settings(write(tmp_path, raw)).background
    idle, count, nightly = settings.triggers
    assert settings.reserved_interactive_share == 0.5
    assert (idle.kind, idle.idle_seconds, idle.watch, idle.max_seconds) == (
        "on_idle",
        30,
        ("a",),
        5,
    )
    assert (count.kind, count.every_n_runs, count.input) == ("every_n_runs", 3, "state")
    assert nightly.select.prefix == ("memories",) and nightly.select.limit == 5
    assert nightly.max_runs_per_day == 2 and settings.trigger("count") is count


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"reserved_interactive_share": 1.5}, "reserved_interactive_share"),
        ({"lanes": 1}, "lanes"),
        ({"triggers": {"t": {"graph": "g"}}}, "exactly one of"),
        ({"triggers": {"t": {"graph": "g", "on_idle": 1, "every_n_runs": 2}}}, "exactly one"),
        ({"triggers": {"t": {"graph": "g", "on_idle": -1}}}, "t.on_idle"),
        ({"triggers": {"t": {"graph": "g", "every_n_runs": 0}}}, "t.every_n_runs"),
        ({"triggers": {"t": {"graph": "g", "schedule": "every day"}}}, "t.schedule"),
        ({"triggers": {"t": {"graph": "g", "schedule": "* * * * *"}}}, "t.select"),
        ({"triggers": {"t": {"on_idle": 1}}}, "t.graph"),
        ({"triggers": {"t": {"graph": "g", "on_idle": 1, "input": "all"}}}, "t.input"),
        ({"triggers": {"t": {"graph": "g", "on_idle": 1, "budget": 3}}}, "budget"),
    ],
)
def test_bad_values_are_refused_by_name(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        background_settings(raw)


def test_a_trigger_naming_an_unknown_graph_stops_the_start() -> None:
    settings = load_settings(GRAPHS_CONFIG)
    graphs = GraphRegistry.load(settings.graphs, settings.base_dir)
    bad = background_settings({"triggers": {"t": {"graph": "nope", "on_idle": 1}}})
    with pytest.raises(ConfigError, match="nope"):
        check_graphs(bad.triggers[0], graphs)
    watch = background_settings(
        {"triggers": {"t": {"graph": "slow", "watch": ["x"], "on_idle": 1}}}
    )
    with pytest.raises(ConfigError, match="watch"):
        check_graphs(watch.triggers[0], graphs)


def test_lane_of_metadata() -> None:
    assert lane_of(None) == lane_of({}) == lane_of({"keel_lane": "interactive"}) == INTERACTIVE
    assert lane_of({"keel_lane": "background"}) == BACKGROUND
    for bad in ("Background", 1, True, ["background"]):
        with pytest.raises(InvalidInput, match="keel_lane"):
            lane_of({"keel_lane": bad})


def test_lane_slots_refuse_background_runs_past_their_share() -> None:
    slots = LaneSlots(background_slots=1)
    assert slots.max_lane() == BACKGROUND
    slots.started({"run_id": "a", "lane": 1})
    slots.started({"run_id": "b", "lane": 0})
    assert slots.max_lane() == INTERACTIVE
    slots.ended("a")
    assert slots.max_lane() == BACKGROUND
