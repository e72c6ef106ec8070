"""Train the model server image's models at build time (deterministic: fixed seeds, synthetic data).

/models/<dir>/model.joblib, served by MLServer's scikit-learn runtime, under the name the pod's
MODEL_NAME gives (or the name a model-settings.json in the directory declares):

- iris-v1, iris-v2: classifiers of 4 features (two versions of the same model, both healthy);
- iris-v3-faulty: trained on 3 features, so every 4-feature request fails inside the model and the
  server answers 500: a version that is broken for real traffic;
- iris-misnamed: packaged under another model name, so /v2/models/<MODEL_NAME>/ready never answers
  200: a version whose pods never become Ready.
"""

import json
import sys
from pathlib import Path

import joblib
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression


def train(out: Path, features: int, seed: int) -> None:
    x, y = make_classification(n_samples=400, n_features=features, n_informative=min(3, features),
                               n_redundant=0, random_state=seed)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=200).fit(x, y), out / "model.joblib")


def main(root: Path) -> None:
    train(root / "iris-v1", 4, seed=1)
    train(root / "iris-v2", 4, seed=2)
    train(root / "iris-v3-faulty", 3, seed=3)
    train(root / "iris-misnamed", 4, seed=4)
    (root / "iris-misnamed" / "model-settings.json").write_text(json.dumps(
        {"name": "iris-legacy", "implementation": "mlserver_sklearn.SKLearnModel"}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
