#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, then runs type-check, lint and tests.
# README command 2, and what .ci/run calls. Safe to re-run: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian keeps nginx and friends in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

# Debian packages the integration tests drive as real peers. Bench peers are installed by bench/.
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v nginx >/dev/null || need+=(nginx)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# Install from the lockfile (including the pinned Node 24). Not `npm ci`: npm 11 leaves other
# platforms' optional packages (biome's per-OS binaries) out of the lockfile it writes, and then
# refuses `npm ci` for the missing entries; `npm install` honours the lockfile all the same.
npm install --no-audit --no-fund
npm test
