#!/usr/bin/env bash
# Installs what the browser tests (pytest -m browser, tests/maps/test_maps_browser.py) and
# benchmarks/map_size.py need. Idempotent: does nothing that is already done.
#   - Debian's `chromium` via apt-get (no browser is downloaded from anywhere else);
#   `playwright install` (which downloads browsers) is never run: tests launch /usr/bin/chromium.
set -euo pipefail

retry() {  # retry CMD...: up to 3 attempts, for transient mirror errors
  local attempt
  for attempt in 1 2 3; do
    if "$@"; then return 0; fi
    echo "install_browser: attempt $attempt of '$*' failed" >&2
    sleep $((attempt * 5))
  done
  return 1
}

if command -v chromium >/dev/null 2>&1; then
  echo "install_browser: chromium present: $(chromium --version 2>/dev/null)"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  retry $SUDO apt-get update
  retry $SUDO apt-get install -y chromium
  echo "install_browser: installed $(chromium --version 2>/dev/null)"
fi
# The Python driver (playwright) comes with the project's dev extra (pip install -e '.[dev]').
