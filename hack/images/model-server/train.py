"""Train the model server image's models at build time (deterministic: fixed seeds, synthetic data).

/models/<dir>/model.joblib with a model-settings.json naming the quality export runtime
(tollgate_quality.QualitySKLearnModel, examples/mlserver: MLServer's scikit-learn runtime plus the
`tollgate_model_score` and `tollgate_model_output_invalid` histograms that the score-shift and
invalid-output-rate SLOs read), served under the name the pod's MODEL_NAME gives (or the name a
model-settings.json declares):

- iris-v1, iris-v2: classifiers of 4 features trained on two subsamples of one problem (two versions of
  the same model, both healthy: their scores agree);
- iris-v3-faulty: trained on 3 features, so every 4-feature request fails inside the model and the
  server answers 500: a version that is broken for real traffic;
- iris-misnamed: packaged under another model name, so /v2/models/<MODEL_NAME>/ready never answers
  200: a version whose pods never become Ready;
- iris-v4-shifted: trained on the inverted labels: it answers every request 200 with a valid output,
  but its scores are far from stable's (a model that is wrong, not broken; only score-shift sees it).

The build checks what the tests rely on, on the load generator's request (hack/images/loadgen): the
healthy versions' scores within 0.05 of each other, the shifted one's at least 0.5 away.
"""

import json
import shutil
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
QUALITY = "tollgate_quality.QualitySKLearnModel"
LOADGEN_ROW = [[0.5, -1.2, 0.3, 2.0]]
"""The body of hack/images/loadgen/loadgen.py's requests."""


def fit(features: int, seed: int, flip_labels: bool = False) -> LogisticRegression:
    x, y = make_classification(n_samples=400, n_features=features, n_informative=min(3, features),
                               n_redundant=0, random_state=1)
    rows = np.random.RandomState(seed).choice(len(y), size=len(y) * 9 // 10, replace=False)
    return LogisticRegression(max_iter=200).fit(x[rows], 1 - y[rows] if flip_labels else y[rows])


def write(out: Path, model: LogisticRegression, name: str | None = None) -> LogisticRegression:
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    shutil.copy(HERE / "tollgate_quality.py", out / "tollgate_quality.py")
    settings = {"implementation": QUALITY, **({"name": name} if name else {})}
    (out / "model-settings.json").write_text(json.dumps(settings))
    return model


def main(root: Path) -> None:
    v1 = write(root / "iris-v1", fit(4, seed=1))
    v2 = write(root / "iris-v2", fit(4, seed=2))
    write(root / "iris-v3-faulty", fit(3, seed=3))
    write(root / "iris-misnamed", fit(4, seed=4), name="iris-legacy")
    shifted = write(root / "iris-v4-shifted", fit(4, seed=5, flip_labels=True))
    score = {k: float(m.predict_proba(LOADGEN_ROW)[0, 1]) for k, m in (("v1", v1), ("v2", v2), ("v4", shifted))}
    print(f"train: scores on the load generator's request {score}")
    assert abs(score["v1"] - score["v2"]) < 0.05, score
    assert abs(score["v1"] - score["v4"]) > 0.5, score


if __name__ == "__main__":
    main(Path(sys.argv[1]))
