#!/usr/bin/env bash
# Install everything Sandhaven needs on Debian 12 (run as root from the checkout):
# system packages, a virtual environment in .venv, and Sandhaven itself.
# Usage: scripts/install.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."

packages() { grep -hv '^\s*#' "$@" | grep -v '^\s*$' | tr '\n' ' '; }

want=(scripts/apt-packages.txt)
extra=""
if [[ "${1:-}" == "--test" ]]; then
  want+=(scripts/apt-packages-test.txt)
  extra="[test]"
fi

export DEBIAN_FRONTEND=noninteractive
# Servers that grains (or benchmarks) use only as programs: Debian starts their
# system service on install. Those this script installs are stopped and disabled
# again; one the machine already had (nginx as the TLS proxy, say) is left alone.
services=(lighttpd:lighttpd mariadb-server:mariadb nginx-light:nginx)
fresh=()
for pair in "${services[@]}"; do
  dpkg -s "${pair%%:*}" >/dev/null 2>&1 || fresh+=("${pair##*:}")
done
apt-get update -qq
# shellcheck disable=SC2046
apt-get install -y -qq --no-install-recommends $(packages "${want[@]}") >/dev/null
if [[ -d /run/systemd/system ]]; then
  for unit in "${fresh[@]}"; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
if ! command -v npm >/dev/null; then
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

# Debian's own Python (/usr/bin/python3): grains see only the host's /usr.
if [[ ! -x .venv/bin/python ]]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extra}"
echo "Sandhaven installed in $(pwd)/.venv"
