#!/usr/bin/env bash
# Builds the libcurl both services link: Debian's own curl source package
# (the version installed as libcurl4-openssl-dev, or the archive's newest
# if it no longer has that one; all of Debian's patches, security fixes
# included, and Debian's hardening flags) as a static library with only
# what they use: HTTP and HTTPS over OpenSSL, the
# threaded resolver, IPv6, proxies, gzip/deflate and brotli decoding.
#   scripts/build-curl.sh    # run by scripts/install-deps.sh
# Installs into $QFP_CURL_ROOT (default /opt/qfp-curl; CMake's QFP_CURL_ROOT
# has the same default) once per Debian version and recipe; a no-op after.
#
# Why: Debian's libcurl.so also links LDAP, Kerberos, SSH, RTMP, PSL, IDN,
# zstd, nghttp2 and GnuTLS (25 libraries, 3.8 MiB of the poller's resident
# memory at 1000 servers; tests/bench/README.md) for protocols and features the
# services never use. Configure with -DQFP_LEAN_CURL=OFF to link Debian's
# libcurl.so instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/debian-source.sh

installed=$(dpkg-query -W -f='${source:Version}' libcurl4-openssl-dev)
# Bump when the options below change.
recipe=2
root=${QFP_CURL_ROOT:-/opt/qfp-curl}
while [ "${root%/}" != "$root" ] && [ "$root" != / ]; do root=${root%/}; done
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

# Two scripts may call this at once (CI builds several trees in parallel).
# The lock file is shared by every user (root's run and a user's later one):
# opened for reading when it is another user's.
lock="${TMPDIR:-/tmp}/qfp-build-curl.lock"
if [ ! -e "$lock" ] || [ -w "$lock" ]; then
  exec 9>>"$lock"
  chmod 0666 "$lock" 2>/dev/null || true
else
  exec 9<"$lock"
fi
flock 9
# The stamp names the source built and the libcurl4-openssl-dev it was
# built for: a Debian update of libcurl rebuilds it.
stamp_for=" recipe $recipe for $installed"
case "$(cat "$root/qfp-curl.stamp" 2>/dev/null)" in
  *"$stamp_for") exit 0 ;;
esac

# The installed version's source; when the archive has moved on (a machine
# not upgraded since), the newest the archive has, with the same patches
# and more.
versions=$(debian_source_versions curl)
if grep -qx "$installed" <<<"$versions"; then
  version=$installed
else
  version=$(head -1 <<<"$versions")
  [ -n "$version" ] || {
    echo "build-curl: Debian's archive has no curl source (deb-src); configure" \
      "with -DQFP_LEAN_CURL=OFF to link Debian's libcurl.so instead" >&2
    exit 1
  }
  echo "build-curl: the archive no longer has curl $installed's source;" \
    "building $version, its newest (apt-get upgrade libcurl4-openssl-dev to match)"
fi
stamp="curl $version$stamp_for"

start=$(date +%s)
echo "Building libcurl $version (static, HTTP and HTTPS only) into $root"
work=$(mktemp -d "${TMPDIR:-/tmp}/qfp-curl.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$(debian_source curl "$version" "$work")
# Debian's compiler flags (dpkg-buildflags, run in the tree as
# dpkg-buildpackage does, so -ffile-prefix-map maps it to "."; the build
# directory is inside it, so no temporary path ends up in the objects).
cflags=$(cd "$src" && echo "$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)")
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache)
# HTTP_ONLY turns every protocol but HTTP and HTTPS off. The CA locations
# are Debian's (debian/rules' --with-ca-path and --with-ca-bundle), named
# rather than probed, so a build machine without ca-certificates builds the
# same. Installed with its final prefix (curl-config and libcurl.pc name
# it), staged under DESTDIR first.
CFLAGS="$cflags" \
  cmake -S "$src" -B "$src/qfp-build" -G Ninja "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX="$root" \
  -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_CURL_EXE=OFF \
  -DBUILD_TESTING=OFF -DENABLE_MANUAL=OFF -DPICKY_COMPILER=OFF \
  -DHTTP_ONLY=ON -DCURL_USE_OPENSSL=ON -DENABLE_THREADED_RESOLVER=ON \
  -DCURL_BROTLI=ON -DCURL_ZSTD=OFF -DUSE_NGHTTP2=OFF -DUSE_LIBIDN2=OFF \
  -DCURL_USE_LIBPSL=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_GSSAPI=OFF \
  -DCURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
  -DCURL_CA_PATH=/etc/ssl/certs >"$work/configure.log" 2>&1 ||
  { tail -40 "$work/configure.log" >&2; exit 1; }
DESTDIR="$work/stage" ninja -C "$src/qfp-build" -j2 install >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; exit 1; }
echo "$stamp" >"$work/stage$root/qfp-curl.stamp"
$sudo rm -rf "$root.new"
$sudo cp -a "$work/stage$root" "$root.new"
$sudo rm -rf "$root"
$sudo mv "$root.new" "$root"
echo "libcurl built in $(($(date +%s) - start)) s"
