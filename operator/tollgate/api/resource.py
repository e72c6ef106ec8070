"""Names of the ModelDeployment resource and of the labels and annotations Tollgate owns."""

from __future__ import annotations

GROUP = "tollgate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md",)
CATEGORIES = ("tollgate", "ml")

FIELD_MANAGER = "tollgate"

FINALIZER = f"{GROUP}/finalizer"
"""The finalizer kopf puts on every ModelDeployment the operator has taken on (its delete handler's)."""

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "tollgate"
LABEL_MD_NAME = "tollgate.dev/modeldeployment"
LABEL_MD_NAMESPACE = "tollgate.dev/modeldeployment-namespace"
LABEL_MODEL = "tollgate.dev/model"
LABEL_TRACK = "tollgate.dev/track"
LABEL_REVISION = "tollgate.dev/revision"
LABEL_VERSION = "tollgate.dev/version"

ANNOTATION_OWNER = "tollgate.dev/owner"
"""On a sandbox namespace Tollgate created: <namespace>/<name> of its ModelDeployment (for people)."""

ANNOTATION_SANDBOX_PREFIXES = "tollgate.dev/sandbox-prefixes"
"""On a tenant's namespace, set by the platform team: the comma-separated prefixes that an explicit
spec.sandbox.namespace of a ModelDeployment in that namespace must start with. Without it, only the default
sandbox name may be used. A sandbox namespace is a cluster-wide name, so a tenant free to pick any name could
create, before its owner does, a namespace somebody else relies on by name (another tenant's sandbox, a team
namespace the platform is about to create) and answer at its Service addresses. Tenants must not be allowed
to annotate their own Namespace (the usual RBAC: namespaces are the platform's). Checked by the operator
(runtime/ownership.py) and by the chart's `sandbox-grants` ValidatingAdmissionPolicy."""

LABEL_OWNER_UID = "tollgate.dev/owner-uid"
"""On a sandbox namespace Tollgate created: the UID of the one ModelDeployment it was created for.

This label is the ownership: Tollgate writes into a namespace only when it carries the UID of the
ModelDeployment being reconciled, deletes only such a namespace, and the chart's
ValidatingAdmissionPolicy lets the operator's ServiceAccount write namespaced objects only into
namespaces carrying this label (plus its own namespace and evidence next to ModelDeployments).
A UID is unique across the cluster's lifetime, so a deleted and re-created ModelDeployment of the same
name does not inherit a namespace either."""

ANNOTATION_METRICS_PORT = "tollgate.dev/metrics-port"
"""On model pods: the port of their metrics (spec.metrics.port), read by the shipped scrape config."""
ANNOTATION_METRICS_PATH = "tollgate.dev/metrics-path"
"""On model pods: the path of their metrics (spec.metrics.path)."""

# The control annotations (tollgate.dev/approve, promote, abort, retry) derive from api.controls.
