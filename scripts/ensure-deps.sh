#!/usr/bin/env bash
# Installs what stackha needs and is missing: Debian packages, npm dependencies, the build. Idempotent and quiet
# when everything is there. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "stackha needs root (network namespaces, daemons of every host): run as root" >&2
  exit 1
fi

PACKAGES=(mariadb-server mariadb-client galera-4 rsync rabbitmq-server haproxy keepalived memcached
  socat iproute2 procps curl
  # Keystone (enable_keystone, on in the lab): ~230 packages, about 80 s the first time.
  python3-keystone uwsgi uwsgi-plugin-python3 python3-openstackclient)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  # Debian starts services on install unless told not to; stackha runs its own, per lab host.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/tmp/stackha-apt.log 2>&1 \
    || { tail -20 /tmp/stackha-apt.log >&2; exit 1; }
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing npm dependencies"
  # `npm install` honours package-lock.json; `npm ci` rejects this npm's own lock (it omits other platforms' optional packages).
  npm install --no-audit --no-fund --loglevel=error
fi

if [ ! -f dist/cli/main.js ] || [ -n "$(find src -newer dist/cli/main.js -name '*.ts' -print -quit)" ]; then
  echo "building"
  npm run --silent build
fi
