#!/usr/bin/env bash
# Builds the libcurl both services link: Debian's own curl source package
# (the version installed as libcurl4-openssl-dev, with all of Debian's
# patches, security fixes included, and Debian's hardening flags) as a
# static library with only what they use: HTTP and HTTPS over OpenSSL, the
# threaded resolver, IPv6, proxies, gzip/deflate and brotli decoding.
#   scripts/build-curl.sh    # run by scripts/install-deps.sh
# Installs into $QFP_CURL_ROOT (default /opt/qfp-curl; CMake's QFP_CURL_ROOT
# has the same default) once per Debian version and recipe; a no-op after.
#
# Why: Debian's libcurl.so also links LDAP, Kerberos, SSH, RTMP, PSL, IDN,
# zstd, nghttp2 and GnuTLS (about 25 libraries, 3 MiB of every process's
# resident memory; tests/bench/README.md) for protocols and features the
# services never use. Configure with -DQFP_LEAN_CURL=OFF to link Debian's
# libcurl.so instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/debian-source.sh

version=$(dpkg-query -W -f='${source:Version}' libcurl4-openssl-dev)
# Bump when the options below change.
recipe=1
root=${QFP_CURL_ROOT:-/opt/qfp-curl}
stamp="curl $version recipe $recipe"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

# Two scripts may call this at once (CI builds several trees in parallel).
exec 9>"${TMPDIR:-/tmp}/qfp-build-curl.lock"
flock 9
[ "$(cat "$root/qfp-curl.stamp" 2>/dev/null)" = "$stamp" ] && exit 0

start=$(date +%s)
echo "Building libcurl $version (static, HTTPS only) into $root"
work=$(mktemp -d "${TMPDIR:-/tmp}/qfp-curl.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$(debian_source curl "$version" "$work")
# Debian's compiler flags (dpkg-buildflags, run in the tree as
# dpkg-buildpackage does, so -ffile-prefix-map maps it to ".").
cflags=$(cd "$src" && echo "$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)")
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache)
# HTTP_ONLY turns every other protocol off. The CA locations are Debian's
# (debian/rules' --with-ca-path and --with-ca-bundle), named rather than
# probed, so a build machine without ca-certificates builds the same.
CFLAGS="$cflags" \
  cmake -S "$src" -B "$work/build" -G Ninja "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX="$work/install" \
  -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_CURL_EXE=OFF \
  -DBUILD_TESTING=OFF -DENABLE_MANUAL=OFF -DPICKY_COMPILER=OFF \
  -DHTTP_ONLY=ON -DCURL_USE_OPENSSL=ON -DENABLE_THREADED_RESOLVER=ON \
  -DCURL_BROTLI=ON -DCURL_ZSTD=OFF -DUSE_NGHTTP2=OFF -DUSE_LIBIDN2=OFF \
  -DCURL_USE_LIBPSL=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_GSSAPI=OFF \
  -DCURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
  -DCURL_CA_PATH=/etc/ssl/certs >"$work/configure.log" 2>&1 ||
  { tail -40 "$work/configure.log" >&2; exit 1; }
ninja -C "$work/build" -j2 install >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; exit 1; }
echo "$stamp" >"$work/install/qfp-curl.stamp"
$sudo rm -rf "$root.new"
$sudo cp -a "$work/install" "$root.new"
$sudo rm -rf "$root"
$sudo mv "$root.new" "$root"
echo "libcurl built in $(($(date +%s) - start)) s"
