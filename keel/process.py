"""Process-wide tuning, done only in a process Keel's own command started (`keel serve`, `keel
dev`'s server, `keel worker`: `Settings.own_process`), never when Keel is embedded in another
program or in the tests' many apps of one process.

`settle()`, once the runtime has started: every object made so far (imported modules, compiled
graphs, the app) is collected once, then moved out of the garbage collector's generations
(`gc.freeze()`). A full collection then walks only what was made since, not the few hundred
thousand objects of the libraries: with OpenTelemetry on, whose spans wait in the export queue
long enough to age into the oldest generation and so bring full collections about, this cut the
collector's time per run by about two thirds (bench/results/tracing.md)."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("keel.process")


def settle() -> None:
    """Collect once, then keep everything alive now out of the collector's generations."""
    gc.collect()
    gc.freeze()
    log.debug("startup objects frozen for the garbage collector: %d", gc.get_freeze_count())
