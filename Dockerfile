# Portico in a container: a wheel built in one stage, installed into a virtualenv in a slim runtime that runs as
# an unprivileged user. `make compose-up` starts two of these beside PostgreSQL and Redis (compose.yaml).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/portico --create-home portico
COPY --from=build /wheels /wheels
RUN python -m venv /opt/portico \
    && /opt/portico/bin/pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels
ENV PATH="/opt/portico/bin:$PATH" \
    PORTICO_HOME=/var/lib/portico \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER portico
WORKDIR /var/lib/portico
EXPOSE 8080
# Liveness only: /health/live touches no dependency, so a database outage never restarts the gateway.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=2)"]
# SIGTERM drains in-flight requests and streams (server.shutdown_grace_seconds), then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["portico"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
