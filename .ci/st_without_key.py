"""Writes a copy of an OpenAPI document without the Idempotency-Key header parameter.

Used by .ci/schemathesis.sh for its second pass. In its coverage phase schemathesis sends an
optional header with an empty value alongside every invalid body it tries; the sandbox checks
the header first (docs/api.md, "Order of checks") and answers 400 for the empty key, so the
invalid bodies would never reach validation. Without the parameter they do, and the 422
rules get checked against the schema.

Usage: python st_without_key.py IN.yaml OUT.json
"""

import json
import sys

import yaml


def main(source, target):
    with open(source, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    removed = 0
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "parameters" not in operation:
                continue
            kept = [
                p
                for p in operation["parameters"]
                if p.get("$ref") != "#/components/parameters/IdempotencyKey"
            ]
            removed += len(operation["parameters"]) - len(kept)
            operation["parameters"] = kept
    if removed == 0:
        sys.exit("st_without_key: no Idempotency-Key parameter found; the document changed")
    with open(target, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
