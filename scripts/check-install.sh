#!/usr/bin/env bash
# Install Careline the way users do (`pip install .`, no extras) into a fresh virtualenv in a temporary
# directory, then run the command line: `careline --help` imports every module of the gateway, and
# `careline config check` reads each example configuration. A module imported at run time but declared
# only as a test extra fails here, not on a user's machine.
#
#   scripts/check-install.sh [python]        (default python3; called from .ci/run before `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
python="${1:-python3}"
./scripts/ensure-python-venv.sh "$python"

work="$(mktemp -d "${TMPDIR:-/tmp}/careline-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Build from a copy of the tracked files (as a clean clone has them), so pip's build files never land in
# the working tree and a package left out of pyproject.toml's list fails here too.
mkdir "$work/src"
git ls-files -z | xargs -0 cp --parents -t "$work/src"

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q "$work/src"
"$work/venv/bin/python" -m pip check

# From the temporary directory, with no PYTHONPATH: only what was installed can be imported.
cd "$work"
run() { env -u PYTHONPATH "$work/venv/bin/careline" "$@"; }
run --help >/dev/null
for example in "$root"/examples/*.yaml; do
  run config check "$example"
done
echo "check-install: pip install . (no extras) gives a working careline"
