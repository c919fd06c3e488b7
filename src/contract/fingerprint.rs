//! The request fingerprint: SHA-256 of the body's canonical JSON (object keys sorted by their
//! UTF-8 bytes, no insignificant whitespace). Two bodies that differ only in key order or
//! spacing have one fingerprint; any change of a value changes it.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A request fingerprint, rendered as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint(#[serde(with = "hex_bytes")] pub [u8; 32]);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The canonical JSON text of `value`.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// The fingerprint of a parsed request body.
pub fn fingerprint(value: &Value) -> Fingerprint {
    Fingerprint(Sha256::digest(canonical_json(value).as_bytes()).into())
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            // Sort explicitly: serde_json's map order depends on a crate feature that any
            // dependency may switch on.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("fingerprint must be 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_recursively_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b": 1, "a": {"z": [1, {"y": null, "x": "é"}], "c": true} }"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":true,"z":[1,{"x":"é","y":null}]},"b":1}"#
        );
    }

    #[test]
    fn key_order_and_spacing_do_not_change_the_fingerprint_but_values_do() {
        let a: Value = serde_json::from_str(r#"{"full_name":"Ada","email":"a@x.io"}"#).unwrap();
        let b: Value =
            serde_json::from_str("{\n  \"email\" : \"a@x.io\",\n  \"full_name\" : \"Ada\"\n}")
                .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&json!({"full_name": "Ada", "email": "b@x.io"}))
        );
        // null and absent are different requests.
        assert_ne!(
            fingerprint(&json!({"full_name": "Ada"})),
            fingerprint(&json!({"full_name": "Ada", "email": null}))
        );
    }

    #[test]
    fn fingerprint_is_sha256_of_canonical_text() {
        let v = json!({"b": 2, "a": 1});
        let expected = hex::encode(Sha256::digest(br#"{"a":1,"b":2}"#));
        assert_eq!(fingerprint(&v).to_string(), expected);
    }

    #[test]
    fn escapes_are_canonical() {
        let v = json!({"k\"ey": "line\nbreak"});
        assert_eq!(canonical_json(&v), r#"{"k\"ey":"line\nbreak"}"#);
    }
}
