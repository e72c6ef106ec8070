"""Risk tiers as data: the rollout a ModelDeployment gets when it omits steps or analysis settings.

A platform team reads this table to know what `riskTier: high` means; the README renders it. Stricter
tiers take smaller first steps, need more samples, tolerate fewer failures, keep a promoted version
under analysis longer (the bake window: none for low and medium, 10m for high, 30m for critical) and, at
`critical`, wait for a person before full traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollgate.api.spec import SLO, ApprovalMode, NoDataPolicy, RiskTier, Step


@dataclass(frozen=True)
class TierPreset:
    """The defaults one risk tier stands for."""

    steps: tuple[Step, ...]
    interval: str
    failure_limit: int
    consecutive_error_limit: int
    min_samples: int
    progress_deadline: str
    approval_required: bool
    default_slos: tuple[SLO, ...]
    bake_window: str = "0s"
    """How long a promoted version stays under analysis at full traffic (0s: not at all)."""


def _slos(error_max: float, error_increase: float, p99_max: float) -> tuple[SLO, ...]:
    return (
        SLO(name="error-rate", max=error_max, maxIncreaseOverBaseline=error_increase,
            onNoData=NoDataPolicy.HOLD, maxNoDataDuration="5m"),
        SLO(name="latency-p99", max=p99_max, onNoData=NoDataPolicy.HOLD, maxNoDataDuration="5m"),
    )


TIERS: dict[RiskTier, TierPreset] = {
    RiskTier.LOW: TierPreset(
        steps=(Step(weight=25), Step(weight=100)),
        interval="30s", failure_limit=2, consecutive_error_limit=4, min_samples=50,
        progress_deadline="5m", approval_required=False,
        default_slos=_slos(0.05, 0.02, 1.0),
    ),
    RiskTier.MEDIUM: TierPreset(
        steps=(Step(weight=10), Step(weight=50), Step(weight=100)),
        interval="30s", failure_limit=1, consecutive_error_limit=4, min_samples=100,
        progress_deadline="5m", approval_required=False,
        default_slos=_slos(0.02, 0.01, 0.5),
    ),
    RiskTier.HIGH: TierPreset(
        steps=(Step(weight=5, pause="1m"), Step(weight=25), Step(weight=50), Step(weight=100)),
        interval="30s", failure_limit=0, consecutive_error_limit=3, min_samples=200,
        progress_deadline="5m", approval_required=False,
        default_slos=_slos(0.01, 0.005, 0.25), bake_window="10m",
    ),
    RiskTier.CRITICAL: TierPreset(
        steps=(
            Step(weight=1, pause="2m"), Step(weight=5), Step(weight=25),
            Step(weight=50, approval=ApprovalMode.REQUIRED), Step(weight=100),
        ),
        interval="30s", failure_limit=0, consecutive_error_limit=2, min_samples=500,
        progress_deadline="5m", approval_required=True,
        default_slos=_slos(0.005, 0.002, 0.25), bake_window="30m",
    ),
}
