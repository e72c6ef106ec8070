"""Train a small real scikit-learn model and write an MLServer model folder for it.

`python train.py OUT_DIR [--name fraud] [--version 1.0.0] [--seed 1] [--flip-labels]`
writes OUT_DIR/model.joblib, OUT_DIR/model-settings.json, OUT_DIR/tollgate_quality.py (the quality
export runtime) and OUT_DIR/inputs.json (held-out rows of the same distribution, for load generators).
The data is synthetic (scikit-learn's make_classification, fixed seed), so the model is made at build
or test time and nothing is downloaded. `--seed` picks the 90% subsample a version is trained on;
`--flip-labels` trains on inverted labels: a real model whose scores shift, for rollback demonstrations.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
FEATURES = 8


TRAIN, HELD_OUT = 2000, 500


def data() -> tuple[np.ndarray, np.ndarray]:
    """One fixed synthetic problem: every version is trained on (part of) the same distribution."""
    x, y = make_classification(n_samples=TRAIN + HELD_OUT, n_features=FEATURES, n_informative=5,
                               random_state=7, weights=[0.6, 0.4])
    return x, y


def train(seed: int, flip_labels: bool) -> object:
    x, y = data()
    x, y = x[:TRAIN], y[:TRAIN]
    rows = np.random.RandomState(seed).choice(TRAIN, size=TRAIN * 9 // 10, replace=False)
    x, y = x[rows], y[rows]
    if flip_labels:
        y = 1 - y
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def write_model_folder(out: Path, *, name: str, version: str, seed: int, flip_labels: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(train(seed, flip_labels), out / "model.joblib")
    shutil.copy(HERE / "tollgate_quality.py", out / "tollgate_quality.py")
    settings = {
        "name": name,
        "implementation": "tollgate_quality.QualitySKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": version},
    }
    (out / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    x, _ = data()
    (out / "inputs.json").write_text(json.dumps([[round(float(v), 6) for v in row] for row in x[TRAIN:]]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--name", default="fraud")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--flip-labels", action="store_true")
    a = p.parse_args()
    write_model_folder(a.out, name=a.name, version=a.version, seed=a.seed, flip_labels=a.flip_labels)


if __name__ == "__main__":
    main()
