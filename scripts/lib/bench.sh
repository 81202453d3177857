# Sourced by scripts/bench-*: the Python checkers (scripts/lib/venv.sh) and the patchtrail binary
# in the profile PATCHTRAIL_BENCH_PROFILE names: release (default, what `cargo install` builds),
# dist (what release archives ship, Cargo.toml) or debug. Sets $binary; `build_package P` builds
# another package in the same profile, its binaries beside $binary.
source scripts/lib/venv.sh
profile="${PATCHTRAIL_BENCH_PROFILE:-release}"
case "$profile" in
  debug) profile_args=() ;;
  release | dist) profile_args=(--profile "$profile") ;;
  *) echo "PATCHTRAIL_BENCH_PROFILE=$profile: use release, dist or debug" >&2; exit 2 ;;
esac
build_package() { cargo build "${profile_args[@]}" -p "$1"; }
build_package patchtrail
binary="${CARGO_TARGET_DIR:-target}/$profile/patchtrail"
