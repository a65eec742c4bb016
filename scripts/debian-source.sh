# Sourced by scripts that rebuild a Debian package from Debian's own source
# (scripts/build-curl.sh, scripts/tsan.sh). Not executable on its own.
#
# debian_source PACKAGE VERSION DIR
#   Unpacks source package PACKAGE at exactly VERSION (Debian's patches
#   applied, as `apt-get source` does) under DIR and prints the path of the
#   unpacked tree. Adds a deb-src entry for the archives already configured
#   when apt does not know that version's source yet (needs root, or sudo).
#   Fails, printing apt's output, when the source cannot be fetched.
debian_source() {
  local package=$1 version=$2 dir=$3 sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! apt-cache showsrc "$package" 2>/dev/null | grep -qx "Version: $version"; then
    # The same archives as the deb entries, in both of apt's formats.
    local src_list=/etc/apt/sources.list.d/qfp-deb-src.sources
    local src_one_line=/etc/apt/sources.list.d/qfp-deb-src.list
    local tmp
    tmp=$(mktemp)
    (
      shopt -s nullglob
      for f in /etc/apt/sources.list.d/*.sources; do
        [ "$f" = "$src_list" ] || sed 's/^Types: deb$/Types: deb-src/' "$f"
        echo
      done
    ) >"$tmp"
    $sudo install -m 0644 "$tmp" "$src_list"
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list 2>/dev/null >"$tmp" || true
    if [ -s "$tmp" ]; then
      $sudo install -m 0644 "$tmp" "$src_one_line"
    else
      $sudo rm -f "$src_one_line"
    fi
    rm -f "$tmp"
    $sudo apt-get update -qq
  fi
  mkdir -p "$dir"
  (cd "$dir" && apt-get source -qq --only-source "$package=$version") \
    >"$dir/source.log" 2>&1 || { cat "$dir/source.log" >&2; return 1; }
  # dpkg-source names the tree PACKAGE-UPSTREAM_VERSION.
  local trees=("$dir/$package"-*/)
  [ ${#trees[@]} -eq 1 ] && [ -d "${trees[0]}" ] ||
    { echo "apt-get source made no single $dir/$package-*/" >&2; return 1; }
  echo "${trees[0]%/}"
}
