//! The one written form of every JSON document: compact, object keys in
//! byte order at every level, and numbers as they were written ([`Json`]).
//! A document's bytes depend only on its content, never on map iteration
//! order or on the order fields were set.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, IoContext, Result};

/// A document in its one written form: compact JSON, keys sorted, numbers
/// as they were written (see [`Json`]).
pub fn canonical_json<T: Serialize>(doc: &T) -> Vec<u8> {
    let mut out = Vec::new();
    to_json(doc).write_canonical(&mut out, None, None);
    out
}

/// Writes a string as a JSON string literal (quotes included) that reads
/// back as the same string.
pub type StringWriter<'a> = &'a dyn Fn(&str, &mut Vec<u8>);

/// [`canonical_json`], except that each string in an array that is the value
/// of a key named in `keys` (at any depth) is written by `write`, which must
/// write a JSON string literal of that same string: the document reads back
/// as [`canonical_json`]'s does, and its bytes still depend only on its
/// content.
pub fn canonical_json_with<T: Serialize>(doc: &T, keys: &[&str], write: StringWriter) -> Vec<u8> {
    let mut out = Vec::new();
    to_json(doc).write_canonical(&mut out, Some((keys, write)), None);
    out
}

fn to_json<T: Serialize>(doc: &T) -> Json {
    // serde_json writes each number's text exactly (a `Json` number as
    // given); reading it back as `Json` keeps that text.
    let text = serde_json::to_vec(doc).expect("documents are plain JSON");
    Json::parse(std::str::from_utf8(&text).expect("serde_json writes UTF-8"))
        .expect("serde_json writes JSON")
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
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// The number's JSON text.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in byte order.
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

    /// With `special`, the strings of an array under a key it names are
    /// written by its writer ([`canonical_json_with`]); `strings` is that
    /// writer when this value is under that key.
    fn write_canonical(
        &self,
        out: &mut Vec<u8>,
        special: Option<(&[&str], StringWriter)>,
        strings: Option<StringWriter>,
    ) {
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
                    let strings = special
                        .filter(|(keys, _)| keys.contains(&k.as_str()))
                        .map(|(_, w)| w);
                    v.write_canonical(out, special, strings);
                }
                out.push(b'}');
            }
            Json::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match (x, strings) {
                        (Json::String(s), Some(write)) => write(s, out),
                        _ => x.write_canonical(out, special, None),
                    }
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

/// Parse a JSON document read from `path`, telling malformed JSON from JSON
/// that does not fit the expected shape.
pub fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T> {
    // Documents are objects; a top-level array would be read positionally.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(Error::spec(path, "expected a JSON object ({ ... })"));
    }
    // A document that does not fit is the spec's mistake, named at the
    // path of the value at fault; malformed JSON is reported as such.
    let error = |at: &str, source: serde_json::Error| match source.classify() {
        serde_json::error::Category::Data => Error::spec(path, at_path(at, &source.to_string())),
        _ => Error::Json {
            path: path.to_owned(),
            source,
        },
    };
    // serde keeps the last of two equal keys wherever a value passes
    // through `serde_json::Value` (file entries, inline layers, closure,
    // extraConfig), so duplicates are looked for first, at every level.
    duplicate_keys(bytes).map_err(|e| error("", e))?;
    // The path of the value at fault (`layers[0].files[1].uid`) leads the
    // message: serde alone gives only a line and column.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        error(&at, e.into_inner())
    })?;
    de.end().map_err(|e| error("", e))?;
    Ok(value)
}

/// `Err` naming the key and where, when an object of the JSON document
/// `bytes` has a key twice (or when it is not JSON).
pub fn check_duplicate_keys(bytes: &[u8]) -> std::result::Result<(), String> {
    duplicate_keys(bytes).map_err(|e| e.to_string())
}

fn duplicate_keys(bytes: &[u8]) -> std::result::Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde::de::DeserializeSeed::deserialize(NoDuplicateKeys { at: "" }, &mut de)
        .and_then(|()| de.end())
}

/// Walks a JSON document, refusing an object that has a key twice; `at`
/// is where the value is (`layers[0].files[1]`, empty at the top).
struct NoDuplicateKeys<'a> {
    at: &'a str,
}

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicateKeys<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        use serde::de::Error as _;
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = if self.at.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.at)
            };
            if seen.contains(&key) {
                let place = if self.at.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in {}", self.at)
                };
                return Err(A::Error::custom(format!(
                    "duplicate key {key:?} {place}: each key may appear once in an object"
                )));
            }
            map.next_value_seed(NoDuplicateKeys { at: &at })?;
            seen.insert(key);
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let at = format!("{}[{i}]", self.at);
            if seq
                .next_element_seed(NoDuplicateKeys { at: &at })?
                .is_none()
            {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }
}

/// `message` (which may itself start with a path, `[0].uid: ...` or
/// `.files[0]: ...`, from a nested value) placed at the path `at`.
pub(crate) fn at_path(at: &str, message: &str) -> String {
    if at.is_empty() || at == "." {
        message.trim_start_matches('.').to_owned()
    } else if message.starts_with(['[', '.']) {
        format!("{at}{message}")
    } else {
        format!("{at}: {message}")
    }
}

/// The largest JSON document nixoci reads from a layout or a building
/// block's output (OCI documents are far smaller; `layer.json` lists store
/// paths).
pub const MAX_JSON: u64 = 64 << 20;

/// The largest manifest, index or config any reader takes, from a layout
/// or a registry (registries commonly accept 4 MiB manifests).
pub const MAX_DOCUMENT: u64 = 16 << 20;

/// Open `path` (following links: blobs link into the Nix store) for
/// reading, and refuse it unless it is a regular file. The file is opened
/// first and checked through its descriptor (`fstat`), never checked by
/// path and then opened: a FIFO put in its place in between would block
/// the open. It is opened with `O_NONBLOCK`, so opening a FIFO or a device
/// never waits (and `O_NOCTTY`, so a terminal never becomes the process's);
/// on a regular file the flag changes nothing.
pub fn open_regular(path: &Path) -> Result<(File, fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .at(path)?;
    let meta = file.metadata().at(path)?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{}: not a regular file but a {}",
            path.display(),
            kind(&meta)
        )));
    }
    Ok((file, meta))
}

/// What a file that is not a regular file is, for a message.
fn kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Read a regular file of at most `max` bytes. Anything else (a FIFO, a
/// device, a symlink to `/dev/zero`, a huge file) is refused before it is
/// read ([`open_regular`]), so untrusted layouts cannot make a reader hang
/// or exhaust memory.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path)?;
    if meta.len() > max {
        return Err(Error::Invalid(format!(
            "{}: {} bytes, more than the {max} this document may have",
            path.display(),
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::read_to_end(&mut io::Read::take(file, max + 1), &mut bytes).at(path)?;
    if bytes.len() as u64 > max {
        return Err(Error::Invalid(format!(
            "{}: grew past {max} bytes while read",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Read the whole regular file at `path`, refusing anything else (a FIFO,
/// a device) without waiting on it ([`open_regular`]): for inputs the user
/// names (a spec, a closure file), which have no size limit of their own.
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::read_to_end(&mut io::BufReader::new(file), &mut bytes).at(path)?;
    Ok(bytes)
}

/// Read and parse a JSON file (at most [`MAX_JSON`] bytes).
pub fn read_json<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = read_limited(path, MAX_JSON)?;
    crate::oci::json::parse_json(path, &bytes)
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
    fn canonical_with_writes_only_the_strings_of_arrays_under_the_key() {
        let v = json!({
            "p": ["a", 1, {"p": ["b"], "q": "c"}],
            "q": ["d"],
            "r": {"p": "e", "s": [{"p": ["f"]}]}
        });
        let upper = |s: &str, out: &mut Vec<u8>| {
            out.extend(serde_json::to_vec(&s.to_uppercase()).unwrap());
        };
        assert_eq!(
            String::from_utf8(canonical_json_with(&v, &["p"], &upper)).unwrap(),
            r#"{"p":["A",1,{"p":["B"],"q":"c"}],"q":["d"],"r":{"p":"e","s":[{"p":["F"]}]}}"#
        );
        let same = |s: &str, out: &mut Vec<u8>| out.extend(serde_json::to_vec(s).unwrap());
        assert_eq!(canonical_json_with(&v, &["p"], &same), canonical_json(&v));
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
        use serde_json::error::Category;
        assert_eq!(Json::parse("[1,").unwrap_err().classify(), Category::Eof);
        let e = Json::parse("01").unwrap_err();
        assert_eq!(e.classify(), Category::Syntax, "{e}");
    }
}
