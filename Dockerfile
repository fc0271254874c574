# Careline gateway image. Build: docker build -t careline .   (docker-compose.yml builds it for you)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Copy only what the package needs (not .venv, tests or local databases), install it, drop the sources.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common ./common
COPY careline ./careline
COPY gateway ./gateway
COPY devices ./devices
COPY rules ./rules
COPY dashboard ./dashboard
COPY simulators ./simulators
RUN pip install . \
 && rm -rf /src

# Run as an unprivileged user; the incident store lives on a volume at /var/lib/careline.
RUN useradd --system --uid 10001 --home-dir /var/lib/careline --shell /usr/sbin/nologin careline \
 && mkdir -p /var/lib/careline /etc/careline \
 && chown careline:careline /var/lib/careline
WORKDIR /var/lib/careline
USER careline
VOLUME ["/var/lib/careline"]

# Dashboard and API. The config must set http.host: 0.0.0.0 to be reachable from outside the container.
EXPOSE 8080

# /api/healthz answers 503 (so urlopen raises) while an MQTT lane is disconnected from the broker, alarm
# commits are failing (database locked, read-only, full) or an alarm waits too long to be committed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/healthz', timeout=3)"]

# `docker run careline config check /etc/careline/careline.yaml` runs another subcommand.
ENTRYPOINT ["careline"]
CMD ["run", "--config", "/etc/careline/careline.yaml"]
