//! The one written form of every JSON document: compact, object keys in
//! byte order at every level, and numbers as they were written ([`Json`]).
//! A document's bytes depend only on its content, never on map iteration
//! order or on the order fields were set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A document in its one written form: compact JSON, keys sorted, numbers
/// as they were written (see [`Json`]).
pub fn canonical_json<T: Serialize>(doc: &T) -> Vec<u8> {
    // serde_json writes each number's text exactly (a `Json` number as
    // given); reading it back as `Json` keeps that text.
    let text = serde_json::to_vec(doc).expect("documents are plain JSON");
    let value = Json::parse(std::str::from_utf8(&text).expect("serde_json writes UTF-8"))
        .expect("serde_json writes JSON");
    let mut out = Vec::new();
    value.write_canonical(&mut out);
    out
}

/// An object of [`Json`] values, keys in byte order.
pub type JsonObject = BTreeMap<String, Json>;

/// A JSON value that keeps each number as written: `1e2` stays `1e2` and
/// `12345678901234567890123` keeps every digit, where `serde_json::Value`
/// would make them `100.0` and `1.2345678901234568e+22`. For what users
/// merge into documents (`extraConfig`, `extraManifest`, `extraIndex`).
/// (serde_json's `arbitrary_precision` feature would do this for every
/// crate in the build, and changes how numbers pass through untagged and
/// flattened types there; this keeps it to nixoci's documents.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's JSON text.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(JsonObject),
}

impl Json {
    /// Parse one JSON text.
    pub fn parse(text: &str) -> std::result::Result<Json, serde_json::Error> {
        use serde_json::value::RawValue;
        let t = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        Ok(match t.as_bytes().first() {
            Some(b'{') => Json::Object(
                serde_json::from_str::<BTreeMap<String, &RawValue>>(t)?
                    .into_iter()
                    .map(|(k, v)| Ok((k, Json::parse(v.get())?)))
                    .collect::<std::result::Result<_, serde_json::Error>>()?,
            ),
            Some(b'[') => Json::Array(
                serde_json::from_str::<Vec<&RawValue>>(t)?
                    .into_iter()
                    .map(|v| Json::parse(v.get()))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            Some(b'"') => Json::String(serde_json::from_str(t)?),
            Some(b't' | b'f') => Json::Bool(serde_json::from_str(t)?),
            Some(b'n') => {
                serde_json::from_str::<()>(t)?;
                Json::Null
            }
            _ => {
                // Checked to be one JSON number.
                serde_json::from_str::<&RawValue>(t)?;
                Json::Number(t.to_owned())
            }
        })
    }

    /// The same value as a `serde_json::Value` (numbers as serde_json reads
    /// them), for checks.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => serde_json::from_str(n).unwrap_or(Value::Null),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }

    /// A `serde_json::Value` as `Json` (numbers as serde_json writes them).
    pub fn from_value(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.to_string()),
            Value::String(s) => Json::String(s.clone()),
            Value::Array(a) => Json::Array(a.iter().map(Json::from_value).collect()),
            Value::Object(m) => Json::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Json::Object(m) => {
                out.push(b'{');
                // A BTreeMap of Strings iterates in byte order.
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).expect("a string serialises"));
                    out.push(b':');
                    v.write_canonical(out);
                }
                out.push(b'}');
            }
            Json::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    x.write_canonical(out);
                }
                out.push(b']');
            }
            Json::Null => out.extend(b"null"),
            Json::Bool(b) => out.extend(if *b { &b"true"[..] } else { b"false" }),
            Json::Number(n) => out.extend(n.as_bytes()),
            Json::String(s) => out.extend(serde_json::to_vec(s).expect("a string serialises")),
        }
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap, SerializeSeq};
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => serde_json::value::RawValue::from_string(n.clone())
                .map_err(S::Error::custom)?
                .serialize(s),
            Json::String(x) => s.serialize_str(x),
            Json::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Json::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Json::parse(raw.get()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_level_and_is_compact() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": "é"}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":"é","z":[1,{"x":3,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn json_keeps_numbers_as_written() {
        let text = r#"{"b":[1e2,-0,12345678901234567890123,1.50],"a":{"y":null,"x":true}}"#;
        let j = Json::parse(text).unwrap();
        assert_eq!(
            String::from_utf8(canonical_json(&j)).unwrap(),
            r#"{"a":{"x":true,"y":null},"b":[1e2,-0,12345678901234567890123,1.50]}"#
        );
        let via_serde: Json = serde_json::from_str(text).unwrap();
        assert_eq!(via_serde, j);
        assert!(Json::parse("[1,").is_err() && Json::parse("01").is_err());
    }
}
