# Sourced by scripts/bench-*: the Python checkers (scripts/lib/venv.sh) and the patchtrail binary
# in the profile PATCHTRAIL_BENCH_PROFILE names: release (default, what `cargo install` builds),
# dist (what release archives ship, Cargo.toml) or debug. Sets $binary.
source scripts/lib/venv.sh
profile="${PATCHTRAIL_BENCH_PROFILE:-release}"
case "$profile" in
  debug) cargo build -p patchtrail ;;
  release | dist) cargo build --profile "$profile" -p patchtrail ;;
  *) echo "PATCHTRAIL_BENCH_PROFILE=$profile: use release, dist or debug" >&2; exit 2 ;;
esac
binary="${CARGO_TARGET_DIR:-target}/$profile/patchtrail"
