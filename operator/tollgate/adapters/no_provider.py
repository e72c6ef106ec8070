"""The metrics provider used when none is configured: every SLO reports a provider error, so analysis
steps fail closed (they never pass on missing measurements)."""

from __future__ import annotations

from collections.abc import Sequence

from tollgate.engine.observations import AnalysisRequest, MDKey, SLOObservation

NO_PROVIDER = "no metrics provider configured (set --prometheus-url)"


class NoProvider:
    """MetricsProvider with nothing behind it."""

    def observe(self, requests: Sequence[AnalysisRequest]) -> dict[MDKey, tuple[SLOObservation, ...]]:
        return {r.key: tuple(SLOObservation(name=s.name, error=NO_PROVIDER, window=r.window) for s in r.slos)
                for r in requests}

    def healthy(self) -> bool:
        return False
