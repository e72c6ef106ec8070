"""Tollgate's model-quality export for MLServer: a scikit-learn runtime that reports what it predicts.

MLServer's own metrics count requests and time them; they never see a prediction. Tollgate's quality
SLOs (score-shift, invalid-output-rate) read two histograms that the model server adds, through
MLServer's documented custom-metrics API (`mlserver.register` / `mlserver.log`, served on the metrics
port next to MLServer's own series, labelled model_name and model_version):

- `tollgate_model_score`: the predicted score (0..1) of every valid output: the probability of the
  last class for a classifier with predict_proba, else the predicted value;
- `tollgate_model_output_invalid`: one observation per output, 1 when it failed validation (not a
  finite number in 0..1), else 0; its _sum / _count is the share of invalid outputs.

Use it in model-settings.json: `"implementation": "tollgate_quality.QualitySKLearnModel"` with this file
beside it (MLServer puts the model folder on the import path). Responses are unchanged. Keep MLServer's
`parallel_workers` at 1 or more (its default): with 0 (inference in the main process) MLServer 1.7.1 exports no
custom metric, and the quality SLOs would see no data (a rollback under `onNoData: fail`).
"""

from __future__ import annotations

import math

import mlserver
import numpy as np
from mlserver.codecs import NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_sklearn import SKLearnModel

SCORE = "tollgate_model_score"
INVALID = "tollgate_model_output_invalid"


def scores(model: object, features: np.ndarray) -> list[float]:
    """One score per input row: P(last class) for a classifier, else the prediction itself."""
    if hasattr(model, "predict_proba"):
        return [float(p) for p in model.predict_proba(features)[:, -1]]
    return [float(v) for v in np.ravel(model.predict(features))]  # type: ignore[attr-defined]


def valid(score: float) -> bool:
    return math.isfinite(score) and 0.0 <= score <= 1.0


class QualitySKLearnModel(SKLearnModel):
    """MLServer's scikit-learn runtime, plus the two quality histograms for every prediction."""

    async def load(self) -> bool:
        loaded = await super().load()
        mlserver.register(SCORE, "Predicted score (0..1) of each valid output (Tollgate quality export).")
        mlserver.register(INVALID, "1 per output that failed validation, else 0 (Tollgate quality export).")
        return loaded

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        response = await super().predict(payload)
        features = self.decode_request(payload, default_codec=NumpyRequestCodec)
        for score in scores(self._model, features):
            if valid(score):
                mlserver.log(**{SCORE: score, INVALID: 0})
            else:
                mlserver.log(**{INVALID: 1})
        return response
