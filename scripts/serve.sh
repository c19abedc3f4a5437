#!/usr/bin/env bash
# Install Sandhaven, build the default app catalog from the recipes in apps/,
# and serve. One command for a fresh Debian 12 machine (run as root from the
# checkout); arguments go to `sandhaven serve` (e.g. --dev, --port 7000).
#
# The catalog goes to DATA_DIR/catalog (what `serve` reads by default), the apps'
# signing keys to DATA_DIR/app-keys, build trees to DATA_DIR/build/apps; set
# SANDHAVEN_DATA_DIR or pass --data-dir to move all of it. Recipes whose files did not change since
# the last build are not built again, so a second run starts in seconds. A
# recipe that fails to build (no network for npm, say) is reported, the catalog
# lists the others, and the server starts anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
# --data-dir among the arguments moves the catalog too (as SANDHAVEN_DATA_DIR does).
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --data-dir) export SANDHAVEN_DATA_DIR="${args[i + 1]:-}" ;;
    --data-dir=*) export SANDHAVEN_DATA_DIR="${args[i]#--data-dir=}" ;;
  esac
done
bash scripts/install.sh
# A port in use is said at once, before minutes of building apps.
.venv/bin/sandhaven serve --check-listen "$@"
if ! .venv/bin/sandhaven catalog build apps --keep-going; then
  echo "serve.sh: some apps could not be built (see above); the catalog lists the others." >&2
fi
exec .venv/bin/sandhaven serve "$@"
