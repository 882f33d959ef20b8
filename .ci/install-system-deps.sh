#!/usr/bin/env bash
# System packages the browser test (tests/e2e/test_ui_backfill.py) and the benchmarks (rclone) need.
# Idempotent and quiet: installs only what is missing, refreshes the package lists only then, and shows apt's
# output only if it fails.
set -euo pipefail

# package -> a file it installs: the cheap "already installed" check (no dpkg/apt call when nothing is missing)
declare -A WANT=(
    [chromium]=/usr/bin/chromium
    [chromium-driver]=/usr/bin/chromedriver
    [rclone]=/usr/bin/rclone
)

missing=()
for pkg in chromium chromium-driver rclone; do
    [[ -x "${WANT[$pkg]}" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
run() {
    if ! $SUDO "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        echo "install-system-deps: '$*' failed" >&2
        exit 1
    fi
}
# a fresh machine's package lists are stale or empty: an install without the update fails with 404s
run apt-get update -qq
run apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-system-deps: installed ${missing[*]}"
