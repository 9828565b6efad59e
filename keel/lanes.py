"""Priority lanes: interactive runs are claimed before background ones, and a share of each
process's worker slots is kept for interactive runs (docs/sleep-time.md).

A run's lane is stored in `runs.lane` (0 interactive, 1 background). Sleep-time triggers create
background runs; a client asks for the background lane with `metadata.keel_lane`: the run's
metadata as the reference merges it (assistant, thread, request), so a thread or an assistant
whose metadata says "background" puts its runs there too, and a run's metadata always tells its
lane. The reference has no such field; its `priority` config (a per-thread -5..5 order chosen by
a server-side handler, not implemented by Keel) is another thing, hence another name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keel.errors import InvalidInput

LANE_KEY = "keel_lane"  # in a run-create request's `metadata`
INTERACTIVE = 0
BACKGROUND = 1
LANES = {"interactive": INTERACTIVE, "background": BACKGROUND}


def lane_of(metadata: Any) -> int:
    """The lane a run's metadata asks for (interactive when it says nothing); any other value
    than 'interactive' or 'background' is a 422."""
    if not isinstance(metadata, dict) or metadata.get(LANE_KEY) is None:
        return INTERACTIVE
    value = metadata[LANE_KEY]
    if not isinstance(value, str) or value not in LANES:
        raise InvalidInput(f"metadata.{LANE_KEY} must be one of {sorted(LANES)}, got {value!r}")
    return LANES[value]


@dataclasses.dataclass
class LaneSlots:
    """A worker pool's background runs in flight, against its background slots."""

    background_slots: int
    background: set[str] = dataclasses.field(default_factory=set)

    def max_lane(self) -> int:
        """The lowest-priority lane a claim may take now."""
        return BACKGROUND if len(self.background) < self.background_slots else INTERACTIVE

    def started(self, run: dict[str, Any]) -> None:
        if int(run.get("lane") or 0) >= BACKGROUND:
            self.background.add(run["run_id"])

    def ended(self, run_id: str) -> None:
        self.background.discard(run_id)
