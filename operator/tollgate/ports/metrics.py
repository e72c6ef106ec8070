"""The metrics-provider port: SLO observations for the ModelDeployments due in one analysis tick.

The engine says what to measure (engine.observations.AnalysisRequest) and judges what was measured
(engine.analysis); a provider only measures. Prometheus is one implementation
(adapters.prometheus); adapters.no_provider stands in when none is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tollgate.engine.observations import AnalysisRequest, MDKey, SLOObservation


@runtime_checkable
class MetricsProvider(Protocol):
    """What the runtime needs from a metrics backend."""

    def observe(self, requests: Sequence[AnalysisRequest]) -> dict[MDKey, tuple[SLOObservation, ...]]:
        """One observation per requested SLO (in spec order) per ModelDeployment, each track's value as
        measured. Never raises: a failure is an observation with `error` set (it fails closed)."""
        ...

    def healthy(self) -> bool:
        """True when the backend answers; never raises."""
        ...
