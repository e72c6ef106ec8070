"""The Dockerfile is checked statically (no Docker engine here), and its build step is run for real."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def resolved_from_images() -> list[str]:
    """Base images of the stages, with ARG defaults resolved (a stage built on an earlier stage is not one)."""
    args: dict[str, str] = {}
    images = []
    stages: set[str] = set()
    for word, rest in instructions():
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args.setdefault(k, v)
        if word == "FROM":
            parts = rest.split()
            if parts[0] not in stages:
                images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0]))
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
    return images


def test_every_base_image_is_pinned_to_an_exact_version_or_digest() -> None:
    # given the FROM lines, with ARG defaults resolved
    images = resolved_from_images()
    assert len(images) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in images:
        # then each is pinned by digest or by an exact patch tag (never latest or a floating minor)
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[-\w.]*$", image), image


def test_the_runtime_stage_runs_as_a_numeric_non_root_user() -> None:
    # given the instructions of the last stage
    ins = instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    users = [rest for w, rest in ins[last_from:] if w == "USER"]
    # then it ends as a numeric non-root UID (so Kubernetes can verify runAsNonRoot)
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # and it copies only the built virtualenv from the build stage
    copies = [rest for w, rest in ins[last_from:] if w == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies)


def test_no_remote_add_and_the_entrypoint_is_the_packaged_script() -> None:
    ins = instructions()
    # given no ADD at all (ADD fetches URLs and unpacks archives implicitly): COPY only
    assert not [r for w, r in ins if w == "ADD"]
    # and every entrypoint is an exec-form console script that pyproject.toml declares, the operator's last
    # (the default target); the storage initializer's target has its own
    entries = [r for w, r in ins if w == "ENTRYPOINT"]
    assert entries and all(e.startswith("[") for e in entries)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    names = [eval(e)[0] for e in entries]  # exec form is a JSON array
    assert all(n in scripts for n in names)
    assert names[-1] == "tollgate-operator" and scripts["tollgate-operator"] == "tollgate.runtime.main:main"
    assert scripts["tollgate-storage-initializer"] == "tollgate.initializer.main:main"


def test_copy_sources_exist_and_are_not_dockerignored() -> None:
    ignore = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _dest = shlex.split(rest)
        for src in sources:
            # then every source is in the repository and re-included after the .dockerignore's `*`
            assert (REPO / src).exists(), src
            assert f"!{src.rstrip('/')}" in [i.rstrip("/") for i in ignore], src


def test_the_build_stage_step_builds_a_wheel_with_the_entrypoint(tmp_path: Path) -> None:
    # given the same sources the build stage copies (pyproject.toml and operator/)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copytree(REPO / "operator", src / "operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # when the stage's `pip wheel --no-deps` runs (offline here: no build isolation)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "--wheel-dir", str(tmp_path / "dist"), str(src)], capture_output=True, text=True,
                         check=False, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    # then the wheel holds the package (not `operator/` itself) and the console script
    (wheel,) = (tmp_path / "dist").glob("tollgate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tollgate/runtime/main.py" in names and "tollgate/py.typed" in names
    assert not [n for n in names if n.startswith("operator/")]
    # and the test kit (control plane launcher, Prometheus launcher, simulator, demo) is not shipped
    assert not [n for n in names if n.startswith(("tollgate/testing/", "tollgate_testkit/"))]
    # and the dashboard's pages ship in the wheel, while its web stack is only an extra: the image's
    # `pip install tollgate-*.whl` (no extras) does not pull Starlette, uvicorn, Jinja2 or plotly
    assert {"tollgate/cli/dashboard/templates/detail.html", "tollgate/cli/dashboard/static/dashboard.js"} <= set(names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    web = [ln for ln in metadata.splitlines()
           if ln.startswith("Requires-Dist:") and any(p in ln for p in ("starlette", "uvicorn", "jinja2", "plotly"))]
    assert len(web) == 5 and all('extra == "dashboard"' in ln for ln in web), web
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tollgate-operator = tollgate.runtime.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
