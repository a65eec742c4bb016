#!/usr/bin/env bash
# Installs every Debian package that building, testing and the demo need.
# Idempotent and quiet when everything is present. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcurl4-openssl-dev libssl-dev zlib1g-dev libyaml-cpp-dev libabsl-dev
  dpkg-dev libbrotli-dev  # scripts/build-curl.sh: Debian's curl source, built lean
  libgtest-dev libgmock-dev libspdlog-dev nlohmann-json3-dev libbenchmark-dev
  libboost-json1.81-dev  # the poller's streaming JSON check
  libcpp-httplib-dev
  clang libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh)
  libsqlite3-dev sqlite3
  influxdb influxdb-client python3 python3-cryptography python3-grpcio
  python3-protobuf openssl curl
  util-linux procps
  faketime  # libfaketime: tests/integration/test_clock_steps.py
  dnsmasq-base  # the loopback DNS server of tests/integration/test_sharding.py
  # the offline Helm chart test (tests/helm)
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev yamllint
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# Node and npm for tests/helm/validate.js (Kubernetes' schemas) and
# tests/dashboards/check.mjs (Flux parser, Grafana schema): Debian's,
# unless some node with npm is already installed (e.g. a newer one).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# The chart test's npm packages, exactly as tests/helm/package-lock.json pins
# them, into tests/helm/node_modules (git-ignored); again only when the lock
# file changed. --ignore-scripts: none of them needs an install script.
helm_test="$(cd "$(dirname "$0")/.." && pwd)/tests/helm"
lock_sum="$(sha256sum "$helm_test/package-lock.json" | cut -d' ' -f1)"
stamp="$helm_test/node_modules/.qfp-package-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  echo "Installing the npm packages of tests/helm (npm ci)"
  (cd "$helm_test" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" >"$stamp"
fi

# The dashboard test's npm packages (Flux parser, Grafana's dashboard schema),
# as tests/dashboards/package-lock.json pins them, the same way.
dashboards_test="$(cd "$(dirname "$0")/.." && pwd)/tests/dashboards"
lock_sum="$(sha256sum "$dashboards_test/package-lock.json" | cut -d' ' -f1)"
stamp="$dashboards_test/node_modules/.qfp-package-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  echo "Installing the npm packages of tests/dashboards (npm ci)"
  (cd "$dashboards_test" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_sum" >"$stamp"
fi

# The static, HTTP(S)-only libcurl both services link (CMake's QFP_LEAN_CURL),
# built from Debian's source of the installed libcurl version; once per
# version (a no-op after).
"$(dirname "$0")/build-curl.sh"
