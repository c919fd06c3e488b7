#!/usr/bin/env bash
# Checks that the sandbox and docs/openapi.yaml agree, with schemathesis (a third-party
# property-based API tester from PyPI) driving a freshly started sandbox over loopback.
#
# Runs from the repository root. Expects target/debug/icsync to be built (set ICSYNC_BIN to use
# another binary). Creates target/ci-venv on first use. Tunables (environment):
#   ST_MAX_EXAMPLES  test cases per operation and phase (default 60)
#   ST_MAX_TIME      time budget in seconds for the whole schemathesis run (default 150)
#   ST_SEED          hypothesis seed (default fixed, so a failure reproduces; "random" to vary)
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
VENV="target/ci-venv"
BIN="${ICSYNC_BIN:-target/debug/icsync}"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-60}"
MAX_TIME="${ST_MAX_TIME:-150}"
SEED="${ST_SEED:-20261126}"
API_KEY="ic_test_demo"

log() { printf '\n==> %s\n' "$*"; }

if [[ ! -x "$BIN" ]]; then
    echo "schemathesis: $BIN is missing; build it first (cargo build)" >&2
    exit 1
fi

# --- the tool, pinned --------------------------------------------------------------------
if [[ ! -x "$VENV/bin/st" ]] || [[ "$("$VENV/bin/st" --version 2>/dev/null)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    log "schemathesis: installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/st" --version

# --- the server --------------------------------------------------------------------------
workdir="$(mktemp -d)"
sandbox_pid=""
cleanup() {
    if [[ -n "$sandbox_pid" ]] && kill -0 "$sandbox_pid" 2>/dev/null; then
        kill -TERM "$sandbox_pid" 2>/dev/null || true
        # Give it a moment to exit cleanly, then insist.
        for _ in $(seq 1 50); do
            kill -0 "$sandbox_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

log "schemathesis: starting $BIN sandbox --listen 127.0.0.1:0"
"$BIN" sandbox --listen 127.0.0.1:0 >"$workdir/sandbox.out" 2>"$workdir/sandbox.err" </dev/null &
sandbox_pid=$!

# The sandbox prints `listening on http://ADDR` once it accepts connections.
base_url=""
deadline=$((SECONDS + 30))
while [[ -z "$base_url" ]]; do
    base_url="$(sed -n 's/.*listening on \(http:\/\/[^[:space:]]*\).*/\1/p' "$workdir/sandbox.out" | head -n 1)"
    [[ -n "$base_url" ]] && break
    if ! kill -0 "$sandbox_pid" 2>/dev/null; then
        echo "schemathesis: the sandbox exited before listening" >&2
        cat "$workdir/sandbox.out" "$workdir/sandbox.err" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "schemathesis: no 'listening on' line from the sandbox within 30 s" >&2
        cat "$workdir/sandbox.out" "$workdir/sandbox.err" >&2
        exit 1
    fi
    sleep 0.1
done
echo "sandbox listening on $base_url (pid $sandbox_pid)"

# --- the run -----------------------------------------------------------------------------
seed_args=(--seed "$SEED")
[[ "$SEED" == "random" ]] && seed_args=()

log "schemathesis: st run docs/openapi.yaml (max $MAX_EXAMPLES examples per operation, ${MAX_TIME}s budget)"
status=0
# Run from target/ so schemathesis's own cache (.schemathesis/) and reports stay out of the tree.
root="$PWD"
(
    cd target
    SCHEMATHESIS_HOOKS="$root/.ci/st_hooks.py" "$root/$VENV/bin/st" run "$root/docs/openapi.yaml" \
        --url "$base_url" \
        --header "Authorization: Bearer $API_KEY" \
        --max-examples "$MAX_EXAMPLES" \
        --max-time "$MAX_TIME" \
        "${seed_args[@]}" \
        --workers 1 \
        --request-timeout 10 \
        --generation-database none \
        --no-color \
        --report junit --report-dir schemathesis-report \
        </dev/null
) || status=$?

if ((status != 0)); then
    echo "schemathesis: FAILED (exit $status); sandbox stderr follows" >&2
    tail -n 50 "$workdir/sandbox.err" >&2 || true
    exit "$status"
fi
echo "schemathesis: passed"
