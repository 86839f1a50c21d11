# athena-sync: one image for the worker, beat and the one-shot migration (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY worker ./worker
COPY tasks ./tasks
COPY models ./models
RUN pip install . \
    && useradd --create-home --uid 10001 athena \
    && chown athena /app

# beat keeps its schedule file (celerybeat-schedule) in the working directory.
USER athena
CMD ["athena-sync", "worker"]
