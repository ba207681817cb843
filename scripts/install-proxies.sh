#!/usr/bin/env bash
# Installs the real proxies the tests run against (design.md §9, §11): Debian's nginx and
# HAProxy. Idempotent: does nothing when both are installed. Never leaves a service running:
# the packages' init scripts are held back while installing (policy-rc.d), because the tests
# start their own instances on loopback.
#
#   scripts/install-proxies.sh          install what is missing (apt-get; root or sudo)
#   scripts/install-proxies.sh --check  exit 1 when something is missing, install nothing
set -euo pipefail

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

missing=()
have nginx || missing+=(nginx)
have haproxy || missing+=(haproxy)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "install-proxies: missing: ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-proxies: apt-get not found; install ${missing[*]} (Debian packages nginx, haproxy) yourself" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "install-proxies: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-proxies: installing ${missing[*]} with apt-get" >&2
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  added_policy=1
fi
cleanup() {
  if [ "$added_policy" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
have nginx && have haproxy
