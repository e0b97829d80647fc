#!/usr/bin/env bash
# Installs what stackha needs and is missing: npm dependencies, the build, then the Debian packages every service
# declares (`stackha packages --all`, read from the service declarations) and the tools stackha itself runs.
# Idempotent and quiet when everything is there. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "stackha needs root (network namespaces, daemons of every host): run as root" >&2
  exit 1
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

# What stackha runs itself on every host and in the lab: namespaces, process and socket tools, the SQL client.
BASE=(iproute2 procps curl socat util-linux)
# The lab's hosts can run OpenSSH's sshd (`stackha lab sshd`, test/lab/ssh.test.ts), with sudo for a non-root user.
# Without recommends (xauth, ncurses-term...); policy-rc.d below keeps the package from starting an sshd on the machine.
# A lab tenant (`stackha lab tenant`, a simulated server's NIC) leases its address with dhclient and probes the
# outside with ping.
LAB_BARE=(openssh-server openssh-client sudo isc-dhcp-client iputils-ping)
mapfile -t SERVICE_PACKAGES < <(node dist/cli/main.js packages --all --recommends)
# OpenStack's recommended packages are plotting libraries, test tools and (nova-compute-ironic) libguestfs with a
# kernel image: those services' packages come without them.
mapfile -t BARE_PACKAGES < <(node dist/cli/main.js packages --all --no-recommends)
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${BASE[@]}" "${SERVICE_PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done
missing_bare=()
for p in "${LAB_BARE[@]}" "${BARE_PACKAGES[@]}"; do is_installed "$p" || missing_bare+=("$p"); done
if [ ${#missing[@]} -gt 0 ] || [ ${#missing_bare[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]} ${missing_bare[*]}"
  # Debian starts services on install unless told not to; stackha runs its own, per lab host.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q >/dev/null
  : >/tmp/stackha-apt.log
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>/tmp/stackha-apt.log 2>&1 \
      || { tail -20 /tmp/stackha-apt.log >&2; exit 1; }
  fi
  if [ ${#missing_bare[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing_bare[@]}" \
      >>/tmp/stackha-apt.log 2>&1 || { tail -20 /tmp/stackha-apt.log >&2; exit 1; }
  fi
fi
