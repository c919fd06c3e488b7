#!/usr/bin/env bash
# Checks docs/openapi.yaml with the tools integrators use (issue 15):
#   1. spectral (npm, @stoplight/spectral-cli) lints it with .ci/spectral.yaml: no errors;
#   2. openapi-python-client (PyPI) generates a Python client from it with
#      --fail-on-warning, so a request body that degrades to `Any` fails here;
#   3. .ci/openapi_client_check.py starts a sandbox and drives it through that client's
#      typed request model, and checks the document's patterns are portable.
#
# Runs from the repository root. Expects target/debug/icsync to be built (set ICSYNC_BIN to use
# another binary). Tools are pinned and cached under target/: the Python ones in target/ci-venv
# (shared with schemathesis), spectral in target/ci-node.
set -euo pipefail

GENERATOR_VERSION="0.29.1"
DATEUTIL_VERSION="2.9.0.post0"
PYYAML_VERSION="6.0.4"
SPECTRAL_VERSION="6.16.3"
VENV="target/ci-venv"
NODE_DIR="target/ci-node"
CLIENT_DIR="target/openapi-client"
SPEC="docs/openapi.yaml"

# shellcheck source=.ci/lib.sh
source .ci/lib.sh "openapi client"

# --- the tools, pinned -------------------------------------------------------------------
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
if [[ "$("$VENV/bin/openapi-python-client" --version 2>/dev/null)" != *"$GENERATOR_VERSION"* ]] ||
    ! "$VENV/bin/python" -c "import dateutil, yaml" 2>/dev/null; then
    log "openapi client: installing openapi-python-client==$GENERATOR_VERSION into $VENV"
    # The generated client imports python-dateutil for date-time members; the check reads the
    # document with PyYAML.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "openapi-python-client==$GENERATOR_VERSION" "python-dateutil==$DATEUTIL_VERSION" \
        "PyYAML==$PYYAML_VERSION"
fi
SPECTRAL="$NODE_DIR/node_modules/.bin/spectral"
if [[ "$("$SPECTRAL" --version 2>/dev/null)" != "$SPECTRAL_VERSION" ]]; then
    log "openapi client: installing @stoplight/spectral-cli@$SPECTRAL_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-save --silent \
        "@stoplight/spectral-cli@$SPECTRAL_VERSION"
fi

# --- 1. lint -----------------------------------------------------------------------------
log "openapi client: spectral lint $SPEC"
"$SPECTRAL" lint "$SPEC" --ruleset .ci/spectral.yaml --fail-severity error

# --- 2. generate -------------------------------------------------------------------------
log "openapi client: openapi-python-client generate (--fail-on-warning)"
rm -rf "$CLIENT_DIR"
mkdir -p "$CLIENT_DIR"
# ruff (installed with the generator) formats the output; it must be on PATH.
PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/openapi-python-client" generate \
    --path "$SPEC" --output-path "$CLIENT_DIR/icsync_api" --meta none --fail-on-warning
# A body that degraded to `Any` would still generate; the typed model must exist.
grep -q "body: CustomerRequest" "$CLIENT_DIR/icsync_api/api/customers/upsert_customer.py" || {
    echo "openapi client: the upsert's request body is not the typed CustomerRequest model" >&2
    exit 1
}

# --- 3. drive a sandbox through it -------------------------------------------------------
log "openapi client: the typed client against a fresh sandbox"
"$VENV/bin/python" .ci/openapi_client_check.py "$SPEC" "$CLIENT_DIR" "$BIN"
