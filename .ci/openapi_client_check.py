"""Drives a started sandbox through a Python client generated from docs/openapi.yaml.

The client is what openapi-python-client generates (.ci/openapi_client.sh makes it), and every
request body here is its typed request model (CustomerRequest, RiskInput, CustomerType,
CountryCode), as an integrator would write it: create, upsert, replay, idempotency
conflict, 409 customer_conflict, read, and a 422 with field errors. Each answer is checked
(status, parsed model type, members); the script exits non-zero on the first mismatch.

It also checks that every `pattern` in the document is portable (no \\u, \\x or \\p escapes,
no lookaround or backreference; compiles in Python) and that the EmailAddress patterns
accept exactly what the server accepts, on a list of tricky addresses.

Usage: python openapi_client_check.py SPEC CLIENT_DIR BIN
  SPEC        docs/openapi.yaml
  CLIENT_DIR  the directory holding the generated package `icsync_api`
  BIN         the icsync binary; a sandbox is started from it on a free port
"""

import json
import re
import subprocess
import sys
import time
import uuid

import yaml

API_KEY = "ic_test_demo"


def check(condition, what):
    if not condition:
        sys.exit(f"openapi client check FAILED: {what}")
    print(f"ok: {what}")


# --- the document's patterns -------------------------------------------------------------
def patterns(node, path="#"):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield path, value
            else:
                yield from patterns(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from patterns(value, f"{path}/{i}")


# Escapes every dialect (ECMA-262, Go/RE2, Python re) reads alike.
PORTABLE_ESCAPE = re.compile(r"\\[.+*?()\[\]{}|^$\\/-]")
NON_PORTABLE = re.compile(r"\(\?[=!<]|\\[1-9]|\\[uxpPk]")


# Compiles each pattern as ECMA-262 does, with and without the `u` flag; prints the failures.
NODE_COMPILE = """
const failed = [];
for (const p of JSON.parse(require("fs").readFileSync(0, "utf8"))) {
  for (const flags of ["", "u"]) {
    try { new RegExp(p, flags); } catch (e) { failed.push(flags + " " + e.message); }
  }
}
console.log(JSON.stringify(failed));
"""


def check_patterns(doc):
    found = list(patterns(doc))
    check(len(found) >= 8, f"{len(found)} patterns found in the document")
    for path, pattern in found:
        check(not NON_PORTABLE.search(pattern), f"{path}: no \\u, \\x, \\p escape, lookaround or backreference")
        leftover = PORTABLE_ESCAPE.sub("", pattern)
        check("\\" not in leftover, f"{path}: only escapes every dialect reads")
        re.compile(pattern)
    node = subprocess.run(
        ["node", "-e", NODE_COMPILE],
        input=json.dumps([p for _, p in found]),
        capture_output=True,
        text=True,
        check=True,
    )
    check(json.loads(node.stdout) == [], f"every pattern compiles as ECMA-262 (node): {node.stdout.strip()}")


def email_patterns(doc):
    schema = doc["components"]["schemas"]["EmailAddress"]
    return [re.compile(schema["pattern"])] + [re.compile(p["pattern"]) for p in schema["allOf"]]


# --- the sandbox -------------------------------------------------------------------------
def start_sandbox(binary):
    proc = subprocess.Popen(
        [binary, "sandbox", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    sys.exit("openapi client check FAILED: the sandbox printed no 'listening on' line")


# --- the run -----------------------------------------------------------------------------
def run(doc, base_url):
    from icsync_api import AuthenticatedClient
    from icsync_api.api.customers import get_customer, upsert_customer
    from icsync_api.models import (
        ConflictError,
        CountryCode,
        Customer,
        CustomerRequest,
        CustomerType,
        InvalidRequestError,
        NotFoundError,
        RiskInput,
        ValidationError,
    )
    from icsync_api.types import UNSET

    client = AuthenticatedClient(base_url=base_url, token=API_KEY, raise_on_unexpected_status=True)
    run_id = uuid.uuid4().hex[:8]
    ext = f"crm-{run_id}"
    email = f"ada.{run_id}@example.com"

    def upsert(body, key=UNSET):
        return upsert_customer.sync_detailed(client=client, body=body, idempotency_key=key)

    # create: 201 with a typed customer
    create = CustomerRequest(
        external_id=ext,
        full_name="Ada Lovelace",
        email=email,
        type_=CustomerType.INDIVIDUAL,
        phone="+44 20 7946 0958",
        risk=RiskInput(occupation="Mathematician", country_of_residence=CountryCode.GB, is_pep=False),
    )
    first = upsert(create, key=f"create-{run_id}")
    check(first.status_code == 201, f"create answers 201 (got {first.status_code})")
    customer = first.parsed
    check(isinstance(customer, Customer), "create parses as Customer")
    check(customer.external_id == ext and customer.full_name == "Ada Lovelace", "create echoes the fields")
    check(customer.risk.country_of_residence == "GB", "risk answers are kept")
    check(customer.kyc_status.value == "NOT_STARTED", "kyc_status is NOT_STARTED")

    # replay: same key, same body: the same bytes with Idempotent-Replayed
    replay = upsert(create, key=f"create-{run_id}")
    check(replay.status_code == 201, "replay answers the original 201")
    check(replay.headers.get("idempotent-replayed") == "true", "replay carries Idempotent-Replayed: true")
    check(replay.content == first.content, "replay is byte for byte the first answer")

    # idempotency conflict: same key, another body
    other = CustomerRequest(external_id=ext, full_name="Ada King")
    conflict = upsert(other, key=f"create-{run_id}")
    check(conflict.status_code == 409, "same key with another body answers 409")
    check(isinstance(conflict.parsed, ConflictError), "it parses as ConflictError")
    check(conflict.parsed.error.type_.value == "idempotency_conflict", "its type is idempotency_conflict")

    # upsert by external_id, camelCase alias, risk merge: 200
    update = CustomerRequest(
        externalId=ext, fullName="Ada King", risk=RiskInput(occupation=None, expected_monthly_volume=2500)
    )
    updated = upsert(update)
    check(updated.status_code == 200, f"upsert by external_id answers 200 (got {updated.status_code})")
    check(updated.parsed.id == customer.id, "the same customer was updated")
    check(updated.parsed.full_name == "Ada King", "the new name is stored")
    check(updated.parsed.risk.occupation is None, "a null risk answer clears it")
    check(updated.parsed.risk.expected_monthly_volume == 2500, "a new risk answer is added")
    check(updated.parsed.email == email, "an absent field is kept")

    # 409 customer_conflict: another external_id with the same email
    clash = upsert(CustomerRequest(external_id=f"{ext}-other", full_name="Ada L", email=email.upper()))
    check(clash.status_code == 409, "another external_id with a held email answers 409")
    check(clash.parsed.error.type_.value == "customer_conflict", "its type is customer_conflict")
    check(str(clash.parsed.error.conflicting_customer_id) == str(customer.id), "it names the customer in the way")
    check(clash.parsed.error.conflicting_external_id == ext, "and its external_id")

    # read
    read = get_customer.sync_detailed(customer.id, client=client)
    check(read.status_code == 200 and isinstance(read.parsed, Customer), "read answers 200 with a Customer")
    check(read.parsed.full_name == "Ada King", "read shows the update")
    missing = get_customer.sync_detailed(uuid.UUID(int=0), client=client)
    check(missing.status_code == 404 and isinstance(missing.parsed, NotFoundError), "an unknown id is 404")

    # 422 with field errors, every bad field once
    bad = CustomerRequest(full_name="A", fullName="B", email="a..b@example.com", phone="(020) 7946")
    refused = upsert(bad)
    check(refused.status_code == 422, f"a bad body answers 422 (got {refused.status_code})")
    check(isinstance(refused.parsed, ValidationError), "it parses as ValidationError")
    fields = [e.field for e in refused.parsed.error.errors]
    check(fields == ["full_name", "email", "phone"], f"each bad field is listed once, in order: {fields}")

    # 400: an empty key
    empty_key = upsert(CustomerRequest(full_name="A"), key="")
    check(empty_key.status_code == 400 and isinstance(empty_key.parsed, InvalidRequestError), "an empty key is 400")

    # the EmailAddress patterns accept exactly what the server accepts
    compiled = email_patterns(doc)
    addresses = [
        "a@x.io", " Ada@X.IO ", "o'brien+tag@sub.example.co.uk", "a@1.2", "x" * 64 + "@x.io",
        "a@x", "a..b@example.com", ".a@x.io", "a.@x.io", "a@-x.io", "a@x-.io", "a@x..io",
        "\"ab\"@x.io", "a@[127.0.0.1]", "josé@x.io", "x" * 65 + "@x.io", "a@" + "d" * 64 + ".io",
        "a b@x.io", "a@@x.io", "a@x.io.", "jürgen@müller.de", "用户@例子.广告", "a\u2028b@x.io",
        "a\u202eb@x.io", "a@x\u3000y.io", "a@x\U0001F600.io",
        "a" * 64 + "@" + ".".join(["d" * 60] * 3 + ["d" * 4, "io"]),
        "a" * 64 + "@d" + ".".join(["d" * 60] * 3 + ["d" * 4, "io"]),
    ]
    for address in addresses:
        by_spec = all(p.search(address) for p in compiled)
        answer = upsert(CustomerRequest(full_name="Pattern probe", email=address))
        by_server = answer.status_code in (200, 201)
        check(by_spec == by_server, f"spec and server agree on {address[:40]!r} ({by_spec})")


def main(spec, client_dir, binary):
    with open(spec, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    check_patterns(doc)
    sys.path.insert(0, client_dir)
    proc, base_url = start_sandbox(binary)
    try:
        run(doc, base_url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("openapi client check: passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
