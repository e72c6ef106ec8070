"""bench/scale.py's bulk_pairs: the two sides interleaved, the median ratio the figure, every pair kept."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import scale
from common import FULL, Result


def test_the_sides_alternate_and_the_median_of_the_pairs_is_the_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    # given three pairs whose operator sides take 120, 90 and 200 s against a loader's 60 s each time
    calls: list[str] = []
    operator_s = iter((120.0, 90.0, 200.0))

    def loader(sizes: Any) -> dict[str, Any]:
        calls.append("loader")
        return {"total_s": 60.0}

    def operator(sizes: Any, params: Any, base: dict[str, Any], only: frozenset[str],
                 bulk_only: bool = False) -> list[Result]:
        calls.append("operator")
        assert bulk_only and only == {"bulk"}  # the bulk alone: no memory, restart or idle window
        took = next(operator_s)
        return [Result(name="bulk", sizes="full", params={}, figures={
            "ratio": round(took / base["total_s"], 2), "operator_s": took, "baseline_s": base["total_s"],
            "operator_requests": {"requests_per_md": 12.0},
            "operator_phases": [{"mds": 100, "operator_s": took}], "baseline_phases": [{"mds": 100}]})]

    monkeypatch.setattr(scale, "baseline", loader)
    monkeypatch.setattr(scale, "operator_side", operator)
    # when the pairs run
    result = scale.bulk_pairs(FULL, {"sizes": "full"}, 3)
    # then loader and operator alternate, the median (2.0, not the mean 2.28) is judged, and all three are kept
    assert calls == ["loader", "operator"] * 3
    assert result.figures["ratio_median"] == 2.0
    assert (result.figures["ratio_min"], result.figures["ratio_max"]) == (1.5, 3.33)
    assert [r["ratio"] for r in result.figures["runs"]] == [2.0, 1.5, 3.33]
    # and each pair keeps both sides' phases (where the machine's CPU went, bench/common.cpu_by_command)
    assert [r["operator_phases"][0]["operator_s"] for r in result.figures["runs"]] == [120.0, 90.0, 200.0]
    assert all(r["baseline_phases"] == [{"mds": 100}] for r in result.figures["runs"])
    assert result.met == {"ratio_median": False} and result.targets == {"ratio_median": "<= 1.5"}
