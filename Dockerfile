# syntax=docker/dockerfile:1
#
# The demo portal's one image: web, worker, cron and the migration Job all run it, with the first
# argument choosing the process (see docker-entrypoint.sh).
#
#   docker build -t demo-portal:0.1.0 .
#
# Built for linux/amd64 (the Helm digest below is the amd64 archive's); on another machine add
# `--platform linux/amd64`.

# An exact Python patch release on the current Debian stable, so a rebuild gets the same
# interpreter. Bump it deliberately, together with a test run.
ARG PYTHON_IMAGE=python:3.13.16-slim-trixie
# The Go toolchain that builds the vcluster CLI: the release its go.mod asks for (v0.36.1: 1.26.3).
ARG GO_IMAGE=golang:1.26.3-trixie

# --- Python dependencies: a virtualenv copied whole into the runtime stage --------------------
FROM ${PYTHON_IMAGE} AS python-deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Every runtime dependency ships a manylinux wheel, so no compiler is needed here.
RUN /opt/venv/bin/pip install --requirement /tmp/requirements.txt

# --- helm, for the vCluster backend ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS helm
# The version the backend is tested with, and the SHA-256 that Helm's release notes publish for
# its linux-amd64 archive. The build fetches the official `.sha256sum` file too and checks the
# archive against both: the pinned digest catches a tampered or replaced download even when the
# checksum file beside it was replaced as well, and the fetched file catches a stale pin after
# someone bumps HELM_VERSION alone. Bump the two ARGs together.
ARG HELM_VERSION=v4.1.4
ARG HELM_SHA256=70b2c30a19da4db264dfd68c8a3664e05093a361cefd89572ffb36f8abfa3d09
WORKDIR /tmp/helm
# The slim base has no curl; Python's urllib verifies TLS with the image's CA bundle.
RUN set -eu; \
    archive="helm-${HELM_VERSION}-linux-amd64.tar.gz"; \
    python -c 'import sys, urllib.request; [urllib.request.urlretrieve(f"https://get.helm.sh/{n}", n) for n in sys.argv[1:]]' \
        "$archive" "$archive.sha256sum"; \
    sha256sum --check --strict "$archive.sha256sum"; \
    echo "$HELM_SHA256  $archive" | sha256sum --check --strict; \
    tar -xzf "$archive" linux-amd64/helm; \
    install -m 0755 linux-amd64/helm /usr/local/bin/helm; \
    /usr/local/bin/helm version --short | grep -qx "${HELM_VERSION}+g[0-9a-f]*"

# --- vcluster CLI, for restoring archived demos (VCLUSTER_CLI) --------------------------------
# Built from the tagged source rather than downloaded: no digest of the release binary is pinned
# anywhere we could verify, while the module's content at a tag is pinned by Go's public checksum
# database, which `go install` consults before building (the first check below refuses a build
# environment that switched it off or exempted the module), and every dependency by the module's
# own go.sum. GOTOOLCHAIN=local forbids fetching another compiler. The flags are those of
# upstream's release build (.goreleaser.yaml, id vcluster-cli) without its embedded chart, so the
# CLI pulls the chart from the repository, as the portal's own installs do.
FROM ${GO_IMAGE} AS vcluster
ARG VCLUSTER_VERSION=v0.36.1
ENV CGO_ENABLED=0 \
    GOOS=linux \
    GOARCH=amd64 \
    GOTOOLCHAIN=local
RUN set -eu; \
    test "$(go env GOSUMDB)" != off; \
    test -z "$(go env GONOSUMDB GOPRIVATE GOINSECURE GOFLAGS | tr -d '[:space:]')"; \
    go install -trimpath -ldflags "-s -w -X main.version=${VCLUSTER_VERSION#v}" \
        "github.com/loft-sh/vcluster/cmd/vclusterctl@${VCLUSTER_VERSION}"; \
    go version -m /go/bin/vclusterctl \
        | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/loft-sh/vcluster[[:space:]]+${VCLUSTER_VERSION}[[:space:]]+h1:"; \
    install -m 0755 /go/bin/vclusterctl /usr/local/bin/vcluster

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# A fixed UID/GID, the one k8s/ sets as runAsUser: numeric, so the kubelet can check
# runAsNonRoot without reading /etc/passwd, and file ownership agrees everywhere.
RUN groupadd --system --gid 10001 portal \
 && useradd --system --uid 10001 --gid portal --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin portal

# Helm keeps caches and repository config under these; the root filesystem is read-only in
# Kubernetes, where /tmp is a writable emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    HELM_CACHE_HOME=/tmp/helm/cache \
    HELM_CONFIG_HOME=/tmp/helm/config \
    HELM_DATA_HOME=/tmp/helm/data

COPY --from=python-deps /opt/venv /opt/venv
COPY --from=helm /usr/local/bin/helm /usr/local/bin/helm
COPY --from=vcluster /usr/local/bin/vcluster /usr/local/bin/vcluster
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

WORKDIR /app
# Application code stays owned by root: the portal user can read it but never change it.
COPY . /app

# Static files are collected and compressed once, here, so pods start fast and need no writable
# disk. Settings refuse to load without a SECRET_KEY when DEBUG is off, so this one command gets a
# throwaway value that exists only in its own environment: nothing is stored in the image.
# Byte-compiling now saves every pod doing it at start-up (where it could not write anyway).
# var/ is where the SQLite default lives, for a quick `docker run` without a database server.
RUN install -d -o portal -g portal -m 0750 /app/var \
 && DEBUG=false SECRET_KEY=collectstatic-only-not-a-secret \
        python manage.py collectstatic --noinput --verbosity 0 \
 && python -m compileall -q /app/portal /app/demos

USER 10001:10001
EXPOSE 8000

# For `docker run` and Compose; Kubernetes ignores it and uses the probes in k8s/. Django only
# answers host names in ALLOWED_HOSTS, so the check (like the Kubernetes probes) sends
# `Host: localhost`: keep localhost in ALLOWED_HOSTS. Worker and cron containers serve no HTTP:
# give them `python manage.py probe --redis` as their health check instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'Host': 'localhost'}), timeout=4)"]

ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["web"]
