//! A request body's bytes as JSON: size and nesting bounded, and every member name that
//! appears more than once in one object recorded instead of silently dropped.
//!
//! `serde_json::from_slice` keeps the last of two members with the same name, so
//! `{"full_name":"A","full_name":"B"}` would be taken as "B" while an alias given twice
//! (`full_name` and `fullName`) is refused. This parse keeps the first value and remembers the
//! repeated name, so validation can refuse it the same way ([`super::parse_request`]).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The largest request body accepted; a customer body is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The deepest nesting of arrays and objects accepted (a customer body is two levels deep).
pub const MAX_BODY_DEPTH: usize = 64;

/// Why a body is not acceptable JSON. Messages give a position, never the content, so no
/// customer data is echoed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the body is not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
}

/// A member name given more than once in one object. `parent` is the dotted path of member
/// names from the top-level object to that object (`""` for the top level, `"risk"` inside
/// `risk`); objects inside arrays are not tracked (no field of the contract lives there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatedMember {
    pub parent: String,
    pub name: String,
}

/// A parsed request body: its JSON value (the first of any repeated members kept) and the
/// member names that were repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody {
    pub value: Value,
    pub repeated: Vec<RepeatedMember>,
}

impl RequestBody {
    /// Parses `bytes` as one JSON document of at most [`MAX_BODY_BYTES`] bytes and
    /// [`MAX_BODY_DEPTH`] levels.
    pub fn parse(bytes: &[u8]) -> Result<Self, BodyError> {
        if bytes.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        let mut repeated = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = Node {
            depth: 0,
            path: Some(String::new()),
            repeated: &mut repeated,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(RequestBody { value, repeated })
    }

    /// Whether some object held a member name twice.
    pub fn has_repeated_members(&self) -> bool {
        !self.repeated.is_empty()
    }

    /// The names repeated directly inside the object at `parent`.
    pub fn repeated_in(&self, parent: &str) -> Vec<&str> {
        self.repeated
            .iter()
            .filter(|r| r.parent == parent)
            .map(|r| r.name.as_str())
            .collect()
    }
}

/// One JSON value at `depth`; `path` is its dotted member path, `None` below an array.
struct Node<'a> {
    depth: usize,
    path: Option<String>,
    repeated: &'a mut Vec<RepeatedMember>,
}

impl Node<'_> {
    fn enter<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_BODY_DEPTH {
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_BODY_DEPTH} levels"
            )));
        }
        Ok(depth)
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node {
            depth,
            path: None,
            repeated: &mut *self.repeated,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let path = self.path.as_ref().map(|p| match p.as_str() {
                "" => name.clone(),
                p => format!("{p}.{name}"),
            });
            let value = map.next_value_seed(Node {
                depth,
                path,
                repeated: &mut *self.repeated,
            })?;
            if object.contains_key(&name) {
                if let Some(parent) = &self.path {
                    let seen = self
                        .repeated
                        .iter()
                        .any(|r| &r.parent == parent && r.name == name);
                    if !seen {
                        self.repeated.push(RepeatedMember {
                            parent: parent.clone(),
                            name,
                        });
                    }
                }
            } else {
                object.insert(name, value);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plain_body_parses_to_its_value() {
        let body = RequestBody::parse(
            br#"{"full_name":"Ada","risk":{"is_pep":false},"n":[1,2.5,-3,null]}"#,
        )
        .unwrap();
        assert_eq!(
            body.value,
            json!({"full_name": "Ada", "risk": {"is_pep": false}, "n": [1, 2.5, -3, null]})
        );
        assert!(!body.has_repeated_members());
    }

    #[test]
    fn repeated_member_names_are_recorded_with_their_object_and_the_first_value_kept() {
        let body = RequestBody::parse(
            br#"{"full_name":"A","full_name":"B","full_name":"C","risk":{"is_pep":true,"is_pep":false}}"#,
        )
        .unwrap();
        assert_eq!(body.value["full_name"], "A");
        assert_eq!(body.repeated_in(""), ["full_name"]);
        assert_eq!(body.repeated_in("risk"), ["is_pep"]);
        assert!(body.has_repeated_members());
    }

    #[test]
    fn repeats_inside_arrays_are_not_tracked_by_path() {
        let body = RequestBody::parse(br#"{"x":[{"a":1,"a":2}]}"#).unwrap();
        assert!(!body.has_repeated_members());
        assert_eq!(body.value, json!({"x": [{"a": 1}]}));
    }

    #[test]
    fn bodies_over_the_size_bound_are_refused_before_parsing() {
        let big = format!(r#"{{"full_name":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            RequestBody::parse(big.as_bytes()),
            Err(BodyError::TooLarge)
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let at = format!(
            "{}{}",
            "[".repeat(MAX_BODY_DEPTH),
            "]".repeat(MAX_BODY_DEPTH)
        );
        assert!(RequestBody::parse(at.as_bytes()).is_ok());
        let over = format!(
            "{}{}",
            "[".repeat(MAX_BODY_DEPTH + 1),
            "]".repeat(MAX_BODY_DEPTH + 1)
        );
        let e = RequestBody::parse(over.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("nested deeper than 64 levels"), "{e}");
    }

    #[test]
    fn malformed_and_trailing_text_are_syntax_errors() {
        for bad in [&b"{\"full_name\":"[..], b"{} {}", b"", b"\xff"] {
            assert!(
                matches!(RequestBody::parse(bad), Err(BodyError::Syntax(_))),
                "{bad:?}"
            );
        }
    }
}
