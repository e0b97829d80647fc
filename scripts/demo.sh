#!/usr/bin/env bash
# npm run demo: install what is missing, bring up the default 3-host lab, deploy, show status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
stackha() { node dist/cli/main.js "$@"; }
start=$(date +%s)
stackha lab up --hosts 3
stackha deploy
stackha status
echo
echo "demo done in $(( $(date +%s) - start )) s. Tear down with: node dist/cli/main.js lab down"
