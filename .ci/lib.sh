# Shared by the .ci/*.sh checks that run against a built binary: sourced, not run.
# Sets BIN (target/debug/icsync, or ICSYNC_BIN) and defines log; stops when BIN is missing.
# $1: the name the messages start with.

CHECK_NAME="$1"
BIN="${ICSYNC_BIN:-target/debug/icsync}"

log() { printf '\n==> %s\n' "$*"; }

if [[ ! -x "$BIN" ]]; then
    echo "$CHECK_NAME: $BIN is missing; build it first (cargo build)" >&2
    exit 1
fi
