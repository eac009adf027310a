# syntax=docker/dockerfile:1
# The base image, pinned by the digest of its multi-platform index so every build starts
# from the same bytes. Refresh it deliberately (and rebuild) when Python or Debian ship
# fixes: `docker buildx imagetools inspect python:3.11-slim-bookworm` (or
# `crane digest python:3.11-slim-bookworm`) prints the index digest to paste here.
FROM python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b AS interpreter

# Build stage: install the locked runtime dependencies and the package into a venv that
# never gets an installer of its own (the base interpreter's pip installs into it).
FROM interpreter AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python \
        install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# Runtime base: the interpreter without any way to install packages. pip, setuptools and
# wheel go, and so does ensurepip, which could bring pip back.
FROM interpreter AS runtime
RUN python -m pip uninstall --yes pip setuptools wheel \
    && rm -rf /usr/local/lib/python3.11/ensurepip

# Final stage: the bare interpreter and the venv, nothing else; runs as a numeric non-root
# user and writes nothing outside its volumes (state lives in a ConfigMap, /tmp is a
# volume), so the root filesystem can be mounted read-only.
FROM runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/sla-monitor
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["sla-monitor"]
CMD ["run", "--config", "/etc/sla-monitor", "--leader-elect"]
