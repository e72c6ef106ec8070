"""Start MLServer for the model Tollgate names in the pod's environment.

MODEL_NAME (the name requests use: /v2/models/<name>/infer), MODEL_VERSION, and MODEL_URI
(file:///models/<dir>) come from the pod spec Tollgate renders. The settings go to /tmp (the pod's
root filesystem is read-only); MLServer then serves HTTP on 8080 and Prometheus metrics on 8082.
"""

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

work = Path("/tmp/mlserver")
name = os.environ.get("MODEL_NAME", "iris")
version = os.environ.get("MODEL_VERSION", "v1")
source = Path(urlparse(os.environ.get("MODEL_URI", "file:///models/iris-v1")).path)
model_dir = work / "models" / name
model_dir.mkdir(parents=True, exist_ok=True)
settings = {"name": name, "implementation": "mlserver_sklearn.SKLearnModel"}
if (source / "model-settings.json").exists():
    settings.update(json.loads((source / "model-settings.json").read_text()))
settings["parameters"] = {"uri": str(source / "model.joblib"), "version": version}
# a runtime packaged with the model (tollgate_quality.py) is imported from the model folder MLServer loads
for module in source.glob("*.py"):
    shutil.copy(module, model_dir / module.name)
(model_dir / "model-settings.json").write_text(json.dumps(settings))
(work / "settings.json").write_text(json.dumps({
    "http_port": int(os.environ.get("HTTP_PORT", "8080")), "grpc_port": 8081,
    "metrics_port": int(os.environ.get("METRICS_PORT", "8082")),
    # one inference worker process, not 0: with inference in the main process (0) MLServer exports no custom
    # metric (mlserver.log), so the quality runtime's score histogram would never reach Prometheus
    "parallel_workers": 1,
    "metrics_dir": str(work / "metrics"), "load_models_at_startup": True,
}))
print(f"model-server: serving {source} as model {settings['name']} version {version}", flush=True)
os.chdir(work)
os.execvp("mlserver", ["mlserver", "start", str(work)])
