#!/usr/bin/env bash
# Checks that the sandbox and docs/openapi.yaml agree, with schemathesis (a third-party
# property-based API tester from PyPI) driving a freshly started sandbox over loopback.
#
# Runs from the repository root. Expects target/debug/icsync to be built (set ICSYNC_BIN to use
# another binary). Creates target/ci-venv on first use. Tunables (environment):
#   ST_MAX_EXAMPLES  test cases per operation and phase (default 60)
#   ST_MAX_TIME      time budget in seconds for each of the two schemathesis passes (default 80)
#   ST_SEED          hypothesis seed (default fixed, so a failure reproduces; "random" to vary)
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
VENV="target/ci-venv"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-60}"
MAX_TIME="${ST_MAX_TIME:-80}"
SEED="${ST_SEED:-20261126}"
API_KEY="ic_test_demo"

# shellcheck source=.ci/lib.sh
source .ci/lib.sh schemathesis

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

# --- the runs ----------------------------------------------------------------------------
seed_args=(--seed "$SEED")
[[ "$SEED" == "random" ]] && seed_args=()
root="$PWD"
mkdir -p target/schemathesis

# The second pass uses the document without the optional Idempotency-Key header: in its
# coverage phase schemathesis sends that header empty next to each invalid body, the server
# answers the empty key with 400 first, and the body rules would go unchecked.
"$VENV/bin/python" .ci/st_without_key.py docs/openapi.yaml target/schemathesis/openapi-without-key.json

run_st() {
    local name="$1" spec="$2"
    log "schemathesis ($name): st run $spec (max $MAX_EXAMPLES examples per operation, ${MAX_TIME}s budget)"
    # Run from target/schemathesis so schemathesis's cache (.schemathesis/) and reports stay
    # out of the source tree.
    (
        cd target/schemathesis
        "$root/$VENV/bin/st" run "$spec" \
            --url "$base_url" \
            --header "Authorization: Bearer $API_KEY" \
            --max-examples "$MAX_EXAMPLES" \
            --max-time "$MAX_TIME" \
            "${seed_args[@]}" \
            --workers 1 \
            --request-timeout 10 \
            --generation-database none \
            --no-color \
            --report junit --report-dir "report-$name" \
            </dev/null
    )
}

status=0
run_st full "$root/docs/openapi.yaml" || status=$?
if ((status == 0)); then
    run_st bodies "$root/target/schemathesis/openapi-without-key.json" || status=$?
fi

if ((status != 0)); then
    if kill -0 "$sandbox_pid" 2>/dev/null; then
        echo "schemathesis: FAILED (exit $status); the sandbox is still running" >&2
    else
        wait "$sandbox_pid" && code=0 || code=$?
        echo "schemathesis: FAILED (exit $status); the sandbox exited with status $code" >&2
    fi
    echo "sandbox stderr (last 50 lines):" >&2
    tail -n 50 "$workdir/sandbox.err" >&2 || true
    exit "$status"
fi
echo "schemathesis: passed"
