#!/usr/bin/env bash
# Debian splits venv/ensurepip out of python3: install python3-venv when `python3 -m venv` cannot work.
set -euo pipefail
python="${1:-python3}"
"$python" -c 'import venv, ensurepip' 2>/dev/null && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: python3-venv"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
