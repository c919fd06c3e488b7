"""Schemathesis hooks for .ci/schemathesis.sh.

One accommodation, for a rule JSON Schema cannot state: the API takes
`risk.expected_monthly_volume` only as a JSON integer literal (`3299`), and refuses the same
value written with a fraction (`3299.0`) with a 422, as docs/api.md says. JSON Schema's
`integer` counts 3299.0 as an integer, so schemathesis would generate it as valid data.
This hook writes every whole-valued float in a generated body as an integer literal. That
changes the spelling only, never the value, so it cannot turn valid data invalid or invalid
data valid under the schema.
"""

import schemathesis


def _whole_floats_as_ints(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(v) for v in value]
    return value


@schemathesis.hook
def map_body(context, body):
    return _whole_floats_as_ints(body)
