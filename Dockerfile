# One image for every Battery Custody process: ingest, ledger API, ledger consumer and the
# one-shot migrate job (docker-compose.yml picks the command). Hosts without Docker run the
# same processes with `custody stack up` + `custody serve …` (docs/architecture.md §6).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# README.md is named by pyproject.toml (project.readme), so the build needs it.
COPY pyproject.toml README.md alembic.ini ./
COPY services ./services
COPY migrations ./migrations
COPY schemas ./schemas

# A regular install: the migrations go in as data files, where services/db/migrations.py finds
# them (<prefix>/share/battery-custody/migrations). The sources are removed after it.
RUN pip install . \
    && rm -rf services migrations build \
    && useradd --create-home --uid 10001 --user-group custody

# Everything under /app stays owned by root (read-only for the service user).
USER custody

EXPOSE 8000 8001

ENV CUSTODY_INGEST_HOST=0.0.0.0 \
    CUSTODY_LEDGER_HOST=0.0.0.0

CMD ["custody", "--help"]
