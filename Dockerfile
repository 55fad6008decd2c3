# One image for the API, the worker and the migration job; the command picks the role.
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
COPY devstack ./devstack
COPY contracts ./contracts
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --system --uid 10001 tollgate
USER tollgate

EXPOSE 8000
CMD ["tollgate", "api", "--host", "0.0.0.0", "--port", "8000"]
