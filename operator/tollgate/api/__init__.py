"""The ModelDeployment API: spec and status models, the single source of the CRD."""

from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ModelDeploymentStatus

__all__ = ["ModelDeploymentSpec", "ModelDeploymentStatus"]
