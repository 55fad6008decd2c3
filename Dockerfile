# One image for the API, the worker and the migration job; the command picks the role.

# The admin console's htmx (package.json pins it); the rest of node_modules is dev tooling.
FROM node:20-slim AS htmx
WORKDIR /build
COPY package.json /tmp/package.json
# Only htmx, at the pinned version: an install in an empty folder leaves the dev tools out.
RUN HTMX=$(node -p "require('/tmp/package.json').dependencies['htmx.org']") \
    && npm install --no-save --no-audit --no-fund --ignore-scripts "htmx.org@${HTMX}"

FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY pyproject.toml settings.py schedules.py worker.py ./
COPY domain ./domain
COPY models ./models
COPY services ./services
COPY integrations ./integrations
COPY activities ./activities
COPY workflows ./workflows
COPY api ./api
COPY cli ./cli
COPY observability ./observability
COPY devstack ./devstack
COPY contracts ./contracts
COPY --from=htmx /build/node_modules/htmx.org/dist ./node_modules/htmx.org/dist
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --system --uid 10001 tollgate
USER tollgate

EXPOSE 8000
CMD ["tollgate", "api", "--host", "0.0.0.0", "--port", "8000"]
