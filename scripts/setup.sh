#!/usr/bin/env bash
# Installs what baton needs on Debian 12 with Node 20, then builds it.
# As root it installs the Debian packages (rsync, OpenSSH server and client, python3 for rrsync);
# otherwise it only checks for them. `--test` adds what the test suite uses besides: systemd
# (systemd-analyze verify for the generated units), chromium (the HTML report's screenshot),
# time (/usr/bin/time -v for the benchmark's peak memory), xfsprogs (mkfs.xfs for the reflink tests).
set -euo pipefail
cd "$(dirname "$0")/.."
need=(rsync openssh-server openssh-client python3)
if [ "${1:-}" = "--test" ]; then need+=(systemd chromium time xfsprogs); fi
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  for b in rsync ssh ssh-keygen; do command -v "$b" >/dev/null || { echo "setup: $b missing: run as root or apt-get install ${need[*]}" >&2; exit 1; }; done
fi
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
