"""The cyclic garbage collector's settings for a long-running process that parses a stream of JSON.

Why: in a bulk create of 1,000 ModelDeployments the collector took ~6 s of the operator's ~36 s of CPU
(gc.callbacks timing, bench/README.md "What was optimised" 15). Every watch event is parsed into fresh
dicts and lists, which are containers the collector tracks; with CPython 3.11's defaults (a young
collection every 700 net allocations, a full one once a quarter of the old generation is new) events
still being handled were promoted out of the young generation, and each full collection walked every
live object, including the ~84,000 the imports leave behind (the Kubernetes client's models, pydantic's
schemas, kopf), which never become garbage.

- `gc.freeze()` once start-up is over moves those objects to the permanent generation, which no
  collection walks (a full collection of them alone: ~40 ms each time);
- the young generation's threshold goes from 700 to 2,000, CPython 3.13's default: a parsed event is
  usually dropped before the next young collection instead of being promoted and walked again.
Nothing is disabled: reference cycles are still found, a little later. A side effect on 3.11: the rule
"a quarter of the old generation is new" now counts only the unfrozen objects, so full collections come
more often, each much cheaper; the measured gain is net of that.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("tollgate.collector")

YOUNG_THRESHOLD = 2000
"""Net container allocations between young collections (CPython 3.11's default is 700; 3.13's 2,000)."""


def settle_after_startup() -> None:
    """Collect once, then freeze what start-up left alive, and raise the young threshold. Called when
    the process has imported and configured everything and before it serves (runtime.main.run)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    log.info("garbage collector tuned", extra={"frozen": gc.get_freeze_count(), "young_threshold": YOUNG_THRESHOLD})
