# syntax=docker/dockerfile:1
# Build stage: install the locked runtime dependencies and the package into a venv.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# Final stage: the interpreter, the venv, nothing else; runs as a numeric non-root user
# and writes nothing outside its volumes (state lives in a ConfigMap, /tmp is a volume).
FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/sla-monitor
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["sla-monitor"]
CMD ["run", "--config", "/etc/sla-monitor", "--leader-elect"]
