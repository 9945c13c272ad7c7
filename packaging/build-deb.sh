#!/usr/bin/env bash
# Builds the Debian package (release build included) and prints its path,
# alone, on stdout; progress goes to stderr, so callers can write
#   deb="$(bash packaging/build-deb.sh)"
# cargo-deb is pinned and installed once into target/tools, which `cargo
# clean` removes along with everything else built here.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
tools="$PWD/target/tools"
cargo_deb="$tools/bin/cargo-deb"

if [ "$("$cargo_deb" --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  echo "installing cargo-deb $cargo_deb_version into $tools" >&2
  cargo install --quiet --locked --root "$tools" cargo-deb --version "$cargo_deb_version" >&2
fi

# cargo-deb runs `cargo build --release` itself and writes the package to
# target/debian/ (under CARGO_TARGET_DIR when set). --output names the file,
# so the path is known without parsing cargo-deb's output.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$target_dir/debian"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
deb="$target_dir/debian/xdsd_${version}-1_${arch}.deb"
"$cargo_deb" --output "$deb" >&2
echo "$deb"
