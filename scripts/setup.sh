#!/usr/bin/env bash
# Installs what baton needs on Debian 12 with Node 20, then builds it.
# As root it installs the Debian packages (rsync, OpenSSH server and client, python3);
# otherwise it only checks for them. `--test` adds what the test suite uses besides: systemd
# (systemd-analyze verify for the generated units), chromium (the HTML report's screenshot),
# time (/usr/bin/time -v for the benchmark's peak memory), xfsprogs (mkfs.xfs for the reflink tests),
# btrfs-progs (snapshot collection on btrfs loop images), age (by-hand decryption of offsite objects),
# man-db (`man baton` from the installed .deb) and fish (its completion script),
# and every other rsync version Debian offers (e.g. 3.2.7 beside 3.5.0), unpacked side by side into
# $BATON_TEST_CACHE/rsync-<version>/ (default /var/cache/baton-test) for the gate's e2e tests
# (test/helpers/rsync-versions.ts); a version that cannot be fetched is reported as SKIP, not an error.
set -euo pipefail
cd "$(dirname "$0")/.."
need=(rsync openssh-server openssh-client python3)
if [ "${1:-}" = "--test" ]; then need+=(systemd chromium time xfsprogs btrfs-progs age man-db fish); fi
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
if [ "${1:-}" = "--test" ]; then
  cache="${BATON_TEST_CACHE:-/var/cache/baton-test}"
  installed="$(dpkg-query -W -f='${Version}' rsync 2>/dev/null || true)"
  if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    echo "setup: SKIP other rsync versions: cannot write $cache (run as root or set BATON_TEST_CACHE)" >&2
  else
    for v in $(apt-cache madison rsync 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' | sort -u); do
      [ "$v" = "$installed" ] && continue
      upstream="${v#*:}"; upstream="${upstream%%-*}"; upstream="${upstream%%+*}"
      dir="$cache/rsync-$upstream"
      if [ -x "$dir/usr/bin/rsync" ] && "$dir/usr/bin/rsync" --version >/dev/null 2>&1; then continue; fi
      work="$(mktemp -d)"
      if (cd "$work" && apt-get download -qq "rsync=$v" >/dev/null 2>&1) && rm -rf "$dir.tmp" &&
        dpkg-deb -x "$work"/rsync_*.deb "$dir.tmp" && "$dir.tmp/usr/bin/rsync" --version >/dev/null 2>&1; then
        rm -rf "$dir" && mv "$dir.tmp" "$dir" && echo "setup: rsync $v unpacked into $dir"
      else
        rm -rf "$dir.tmp"
        echo "setup: SKIP rsync $v: cannot download or run it (offline?); the gate tests use the installed rsync only" >&2
      fi
      rm -rf "$work"
    done
  fi
fi
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
