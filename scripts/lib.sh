# Common helpers for the project's shell scripts (sourced, not run).
# Stage banners go to stderr so that KTAP on stdout stays clean.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HVGUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hvguest}
KVER_PKG=linux-source-7.3
RUSTC_KERNEL=/usr/bin/rustc
BINDGEN=$HOME/.cargo/bin/bindgen
BINDGEN_VERSION=0.72.1
CARGO_FUZZ_VERSION=0.13.2

stage() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
