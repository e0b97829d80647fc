#!/usr/bin/env bash
# npm test: install what is missing, then type-check, lint, unit tests and the real-daemon lab tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npm run --silent typecheck
npm run --silent lint
npx vitest run "$@"
