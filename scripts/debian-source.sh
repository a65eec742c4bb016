# Sourced by scripts that rebuild a Debian package from Debian's own source
# (scripts/build-curl.sh, scripts/tsan.sh). Not executable on its own.
#
# apt's source indexes are kept apart from the system's: deb-src entries for
# the Debian archives already configured (a path ending in /debian or
# /debian-security, as on Debian's mirrors) and their lists live in
# $QFP_DEB_SRC_STATE (default /var/cache/qfp-deb-src). The machine's own
# apt configuration is never changed, so a third-party archive without a
# source index cannot make anyone's `apt-get update` fail.
#
# debian_source_versions PACKAGE
#   Prints the versions of source package PACKAGE the archives have, newest
#   first, updating the private lists first. Needs root, or sudo.
#
# debian_source PACKAGE VERSION DIR
#   Unpacks source package PACKAGE at exactly VERSION (Debian's patches
#   applied, as `apt-get source` does) under DIR and prints the path of the
#   unpacked tree. Fails, printing apt's output, when the archive does not
#   have that version or cannot be reached.

_qfp_deb_src_state=${QFP_DEB_SRC_STATE:-/var/cache/qfp-deb-src}
_qfp_apt_opts=(
  -o "Dir::Etc::SourceList=$_qfp_deb_src_state/sources.list"
  -o "Dir::Etc::SourceParts=$_qfp_deb_src_state/sources.list.d"
  -o "Dir::State::Lists=$_qfp_deb_src_state/lists"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
)

_qfp_deb_src_update() {
  local sudo="" tmp
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  tmp=$(mktemp)
  (
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
      # deb822 stanzas whose types include deb, on a Debian archive, as
      # type deb-src.
      awk 'BEGIN { RS = ""; ORS = "\n\n" }
           /(^|\n)Types:[^\n]*[ \t]deb([ \t]|\n|$)/ &&
           /(^|\n)URIs:[^\n]*\/debian(-security)?\/?([ \t]|\n|$)/ {
             sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src")
             sub(/^\n/, ""); print }' "$f"
    done
  ) >"$tmp.sources"
  # One-line entries, in sources.list and sources.list.d/*.list.
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" && $0 ~ /\/debian(-security)?\/?[ \t]/ { $1 = "deb-src"; print }' \
    >"$tmp" || true
  $sudo mkdir -p "$_qfp_deb_src_state/sources.list.d" \
    "$_qfp_deb_src_state/lists/partial"
  $sudo install -m 0644 "$tmp" "$_qfp_deb_src_state/sources.list"
  $sudo install -m 0644 "$tmp.sources" \
    "$_qfp_deb_src_state/sources.list.d/debian-src.sources"
  rm -f "$tmp" "$tmp.sources"
  # Where this script's first version put its entries, in the system's list.
  $sudo rm -f /etc/apt/sources.list.d/qfp-deb-src.sources \
    /etc/apt/sources.list.d/qfp-deb-src.list
  # An archive that cannot be reached is reported by apt; what it fetched
  # from the others is still used.
  $sudo apt-get "${_qfp_apt_opts[@]}" update -qq ||
    echo "debian-source: apt-get update reported errors (above)" >&2
}

debian_source_versions() {
  local package=$1
  _qfp_deb_src_update
  apt-cache "${_qfp_apt_opts[@]}" showsrc --only-source "$package" 2>/dev/null |
    sed -n 's/^Version: //p' | sort -u | sort -r -V
}

debian_source() {
  local package=$1 version=$2 dir=$3
  apt-cache "${_qfp_apt_opts[@]}" showsrc --only-source "$package" 2>/dev/null |
    grep -qx "Version: $version" || _qfp_deb_src_update
  mkdir -p "$dir"
  (cd "$dir" && apt-get "${_qfp_apt_opts[@]}" source -qq --only-source \
    "$package=$version") >"$dir/source.log" 2>&1 ||
    { cat "$dir/source.log" >&2; return 1; }
  # dpkg-source names the tree PACKAGE-UPSTREAM_VERSION.
  local trees=("$dir/$package"-*/)
  [ ${#trees[@]} -eq 1 ] && [ -d "${trees[0]}" ] ||
    { echo "apt-get source made no single $dir/$package-*/" >&2; return 1; }
  echo "${trees[0]%/}"
}
