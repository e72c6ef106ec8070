"""Fixtures of the packaging tests: the tools built from Go modules and offline JSON schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.packaging import tools


@pytest.fixture(scope="session")
def tool_bin() -> Path:
    return tools.build_tools()


@pytest.fixture(scope="session")
def k8s_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tools.kubernetes_schemas(tmp_path_factory.mktemp("k8s-schemas"))


@pytest.fixture(scope="session")
def crd_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tools.crd_schemas(tmp_path_factory.mktemp("crd-schemas"), sorted((tools.REPO / "crds").glob("*.yaml")))
