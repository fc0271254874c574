#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks run for real: Mosquitto (MQTT broker),
# Chromium (the dashboard's browser tests, driven by Playwright with executable_path; never
# `playwright install`) and PostgreSQL (the incident store's second backend). Idempotent: installs only
# what is missing.
set -euo pipefail

#
# With arguments, only those parts: `install-system-deps.sh influxdb` is what `make demo` runs when the
# demo's telemetry store is missing.
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(mosquitto chromium influxdb victoria-metrics postgresql haproxy)
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

need=()
want mosquitto && { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto); }
want chromium && { [ -x /usr/bin/chromium ] || need+=(chromium); }
# InfluxDB 1.6.7 (v1 /write and InfluxQL /query) and VictoriaMetrics (accepts InfluxDB v2 writes): the
# telemetry tests start their own on free ports in temporary directories; `careline demo` starts an
# InfluxDB of its own under its data directory.
want influxdb && { [ -x /usr/bin/influxd ] || need+=(influxdb); }
# PostgreSQL: the tests on that backend (`CARELINE_TEST_STORE=postgresql`) run initdb and postgres from
# /usr/lib/postgresql/<major>/bin in a temporary directory (as the package's `postgres` user when root).
# HAProxy: tests/test_deploy_files.py checks deploy/scale/haproxy.cfg with `haproxy -c` and runs it in front
# of two stand-in gateways on free ports (round-robin, WebSocket, readiness).
want haproxy && { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy); }
want postgresql && { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql); }
want victoria-metrics && { command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics); }
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a system-wide Mosquitto on 1883 where systemd runs; the tests never use it (they start
# their own on free ports), and the demo embeds its own broker on 1883, so stop it if it started.
if [[ " ${need[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
# The same for the Debian services of InfluxDB (8086/8088), VictoriaMetrics (8428) and PostgreSQL (5432,
# the package's own cluster): the tests never use them.
for service in influxdb victoria-metrics postgresql haproxy; do
  if [[ " ${need[*]} " == *" $service "* ]] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done
