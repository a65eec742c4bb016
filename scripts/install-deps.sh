#!/usr/bin/env bash
# Installs every Debian package that building, testing and the demo need.
# Idempotent and quiet when everything is present. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcurl4-openssl-dev libssl-dev zlib1g-dev libyaml-cpp-dev libabsl-dev
  libgtest-dev libgmock-dev libspdlog-dev nlohmann-json3-dev libbenchmark-dev
  libboost-json1.81-dev  # the poller's streaming JSON check
  libcpp-httplib-dev
  libsqlite3-dev sqlite3
  influxdb influxdb-client python3 python3-cryptography python3-grpcio
  python3-protobuf openssl curl
  util-linux procps
  faketime  # libfaketime: tests/integration/test_clock_steps.py
  # the offline Helm chart test (tests/helm)
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev yamllint
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "Installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
