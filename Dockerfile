# syntax=docker/dockerfile:1
# The Tollgate operator image: `docker build -t tollgate-operator:dev .`
#
# Two stages: the first builds the wheel from this tree and installs it, with its dependencies,
# into a virtualenv at /opt/tollgate; the second copies only that virtualenv onto the same base, so
# the runtime image has no pip cache, no build tools and no sources. It runs as a fixed non-root
# UID (65532, "nonroot"), which the chart's restricted securityContext (runAsNonRoot) requires.
#
# The base is pinned to an exact patch tag; CI that builds images (the kind e2e path) may pass
# --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest> to pin the digest too.
# tests/unit/packaging/test_dockerfile.py checks these rules statically, and builds the wheel the
# same way the first stage does, since no Docker engine runs on the development machines.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml ./
COPY operator ./operator
# --no-deps: only our wheel here; the dependencies are resolved when the wheel is installed below.
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/tollgate \
 && /opt/tollgate/bin/pip install /dist/tollgate-*.whl \
 && /opt/tollgate/bin/tollgate-operator --help >/dev/null

# The test kit (traffic simulator for the kind e2e path): `docker build --target testkit .`. It is a
# separate target so the operator image (the default, last stage) never carries test code.
FROM ${PYTHON_IMAGE} AS testkit
ENV PATH=/opt/tollgate/bin:$PATH PYTHONPATH=/opt/testkit PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/tollgate /opt/tollgate
COPY testkit/tollgate_testkit /opt/testkit/tollgate_testkit
USER 65532:65532

# The storage initializer (tollgate.initializer, the init container that fetches spec.model.uri and checks
# spec.model.digest): `docker build --target storage-initializer .`. Our wheel without its dependencies
# (the initializer imports only stdlib-only modules of it) beside KServe's storage library, pinned in
# hack/storage-initializer/requirements.txt (pyproject.toml says why it cannot share the operator's
# environment). A separate target, like testkit: the default (last) stage stays the operator.
FROM build AS storage-initializer-build
COPY hack/storage-initializer/requirements.txt /src/initializer-requirements.txt
RUN python -m venv /opt/initializer \
 && /opt/initializer/bin/pip install --no-deps /dist/tollgate-*.whl \
 && /opt/initializer/bin/pip install -r /src/initializer-requirements.txt \
 && /opt/initializer/bin/python -c "import kserve_storage, tollgate.initializer.main"

FROM ${PYTHON_IMAGE} AS storage-initializer
LABEL org.opencontainers.image.title="tollgate-storage-initializer" \
      org.opencontainers.image.description="Fetches a model into the model cache and verifies its digest" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/initializer/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=storage-initializer-build /opt/initializer /opt/initializer
USER 65532:65532
ENTRYPOINT ["tollgate-storage-initializer"]

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tollgate-operator" \
      org.opencontainers.image.description="Rolls out ML model servers as guarded, reversible canaries" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/tollgate/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/tollgate /opt/tollgate
# kopf names each replica from getpass.getuser(), which looks the UID up in /etc/passwd: without an
# entry the operator exits at start ("getpwuid(): uid not found: 65532"), as the first run of this
# image in a pod showed (E2E_BACKEND=node).
RUN echo "nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin" >> /etc/passwd \
 && echo "nonroot:x:65532:" >> /etc/group
# 65532: the conventional "nonroot" UID/GID; numeric so Kubernetes can verify runAsNonRoot.
USER 65532:65532
# 8080: /metrics (TOLLGATE_METRICS_PORT); 8081: /healthz (TOLLGATE_HEALTH_PORT)
EXPOSE 8080 8081
ENTRYPOINT ["tollgate-operator"]
