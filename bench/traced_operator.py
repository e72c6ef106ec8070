"""The operator under tracemalloc, for the memory breakdown (`BENCH_HEAP=DIR python bench/run.py ...`).

Runs `python -m tollgate` with tracemalloc tracing 8 frames (from after the imports); SIGUSR1 writes a snapshot to
$TOLLGATE_HEAP_DIR/heap-<n>.snap (read it with bench/heap.py). Tracing slows the operator and adds its
own memory, so the figures of a traced run are not reported as RSS figures; only the breakdown is.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from tollgate.runtime.main import main

# Imports are not per object; tracing them would take a minute of start-up on this machine.
tracemalloc.start(8)
_dumps = [0]


def _dump(_sig: int, _frame: FrameType | None) -> None:
    _dumps[0] += 1
    n = _dumps[0]
    gc.collect()
    out = Path(os.environ["TOLLGATE_HEAP_DIR"]) / f"heap-{n}.snap"
    tracemalloc.take_snapshot().dump(str(out))
    (out.parent / f"heap-{n}.done").touch()


signal.signal(signal.SIGUSR1, _dump)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
