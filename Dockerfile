# The engine's image: the worker (`python worker.py`) and the API (uvicorn) run from one build.
# docker-compose.yml builds it; tests/test_compose.py checks that every COPY source exists.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# A non-root user owns /data, so a fresh named volume mounted there starts out writable by it.
RUN groupadd --system --gid 10001 engine \
    && useradd --system --uid 10001 --gid engine --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin engine \
    && mkdir -p /data/definitions /data/workflow_logs \
    && chown -R engine:engine /data

# The project (pyproject.toml builds with setuptools: the packages below plus worker.py).
COPY pyproject.toml README.md ./
COPY worker.py ./
COPY workflows/ workflows/
COPY activities/ activities/
COPY api/ api/
RUN pip install . \
    && rm -rf ./build ./*.egg-info

# Example definitions, for seeding /data/definitions (docs/docker-compose.md).
COPY examples/ examples/

ENV WORKFLOW_DEFINITIONS_DIR=/data/definitions \
    WORKFLOW_LOG_DIR=/data/workflow_logs

USER 10001:10001
EXPOSE 8000
CMD ["python", "worker.py"]
