//! The OCI documents: image config, image manifest, image index (image-spec
//! `config.md`, `manifest.md`, `image-index.md`), and the one JSON form every
//! document is written in.
//!
//! Documents are assembled as JSON values, checked against the types the
//! image spec gives every field (one `validate_*` function per document
//! kind, which `verify` uses too) and by parsing them into the `oci-spec`
//! types, and written canonically: compact, object keys sorted by
//! byte order at every level. A document's bytes therefore depend only on its
//! content, never on map iteration order or on the order fields were set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::spec::ImageSpec;

pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's gzip layer type: read (verify, inspect), never written.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The annotation that names a manifest in an image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor (image-spec `descriptor.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of an image (image-spec `image-index.md`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Linux on this machine's architecture: the default choice from an
    /// image index.
    pub fn host_linux() -> Platform {
        Platform {
            architecture: host_architecture().to_owned(),
            os: "linux".into(),
            variant: None,
            os_version: None,
            os_features: None,
        }
    }

    /// Whether an image for `have` is what `self` asks for (a variant is
    /// compared only when asked for).
    pub fn accepts(&self, have: Option<&Platform>) -> bool {
        have.is_some_and(|h| {
            h.os == self.os
                && h.architecture == self.architecture
                && (self.variant.is_none() || self.variant == h.variant)
        })
    }
}

/// The descriptors a manifest or an image index holds (whichever applies).
#[derive(Debug, Default, Deserialize)]
pub struct Refs {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// Whether a media type is an image index (OCI or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Image indexes nested deeper than this (`index.json` at depth 0, an
/// index it lists at depth 1, and so on) are refused by every reader: unpack, archive, pull, inspect and
/// verify.
pub const MAX_INDEX_DEPTH: usize = 8;

/// The most descriptors one walk of an image graph visits (after repeated
/// digests are skipped) before it stops with an error.
pub const MAX_INDEX_NODES: usize = 10_000;

/// What a [`PlatformSearch`] needs next.
#[derive(Debug)]
pub enum SearchStep {
    /// The manifest for the platform.
    Found(Descriptor),
    /// An image index to look into: hand its `manifests` to
    /// [`PlatformSearch::enter`] and ask again.
    Open(Descriptor),
}

/// The search for a platform's manifest in an image index, depth-first
/// through nested indexes (image-spec `image-index.md` allows an index to
/// list indexes), in the order listed, the first match winning; at most
/// [`MAX_INDEX_DEPTH`] deep and [`MAX_INDEX_NODES`] descriptors; an index
/// digest seen before is not opened again. The caller reads the indexes
/// (from a layout or a registry), so one rule serves every reader.
pub struct PlatformSearch {
    want: Platform,
    stack: Vec<std::vec::IntoIter<Descriptor>>,
    opened: std::collections::BTreeSet<String>,
    have: Vec<String>,
    unplatformed: usize,
    nodes: usize,
}

impl PlatformSearch {
    /// A search of an index holding `manifests` for `want` (default
    /// [`Platform::host_linux`]).
    pub fn new(manifests: Vec<Descriptor>, want: Option<&Platform>) -> Self {
        PlatformSearch {
            want: want.cloned().unwrap_or_else(Platform::host_linux),
            stack: vec![manifests.into_iter()],
            opened: Default::default(),
            have: Vec::new(),
            unplatformed: 0,
            nodes: 0,
        }
    }

    /// The next step, or an error listing the platforms the graph has.
    pub fn next_step(&mut self) -> Result<SearchStep> {
        while let Some(level) = self.stack.last_mut() {
            let Some(d) = level.next() else {
                self.stack.pop();
                continue;
            };
            self.nodes += 1;
            if self.nodes > MAX_INDEX_NODES {
                return Err(Error::Invalid(format!(
                    "the image index lists more than {MAX_INDEX_NODES} descriptors (nested indexes included); nixoci stops there"
                )));
            }
            if is_index(&d.media_type) {
                if self.opened.insert(d.digest.clone()) {
                    // The index searched is at depth 1 (index.json's is 0).
                    if self.stack.len() + 1 > MAX_INDEX_DEPTH {
                        return Err(Error::Invalid(format!(
                            "image index {} is nested more than {MAX_INDEX_DEPTH} deep; nixoci reads no deeper",
                            d.digest
                        )));
                    }
                    return Ok(SearchStep::Open(d));
                }
                continue;
            }
            if self.want.accepts(d.platform.as_ref()) {
                return Ok(SearchStep::Found(d));
            }
            match &d.platform {
                Some(p) => {
                    let p = p.to_string();
                    if !self.have.contains(&p) {
                        self.have.push(p);
                    }
                }
                None => self.unplatformed += 1,
            }
        }
        let mut have = self.have.clone();
        if self.unplatformed > 0 {
            have.push(format!(
                "{} manifest(s) with no platform in their descriptor",
                self.unplatformed
            ));
        }
        Err(Error::Invalid(format!(
            "the image index has no image for {} (it has: {}); choose one with --platform",
            self.want,
            if have.is_empty() {
                "nothing".to_owned()
            } else {
                have.join(", ")
            }
        )))
    }

    /// The `manifests` of the index the last [`SearchStep::Open`] named.
    pub fn enter(&mut self, manifests: Vec<Descriptor>) {
        self.stack.push(manifests.into_iter());
    }
}

/// The manifest for `want` in an index holding `manifests`, opening nested
/// indexes with `open` (see [`PlatformSearch`]).
pub fn choose_platform(
    manifests: &[Descriptor],
    want: Option<&Platform>,
    mut open: impl FnMut(&Descriptor) -> Result<Vec<Descriptor>>,
) -> Result<Descriptor> {
    let mut search = PlatformSearch::new(manifests.to_vec(), want);
    loop {
        match search.next_step()? {
            SearchStep::Found(d) => return Ok(d),
            SearchStep::Open(index) => {
                let children = open(&index)?;
                search.enter(children);
            }
        }
    }
}

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

/// GOARCH name of the building machine's architecture.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The image creation time: the spec's, else `SOURCE_DATE_EPOCH`, else
/// 1970-01-01T00:00:01Z. Never the wall clock.
pub fn created_time(spec_created: Option<&str>) -> Result<String> {
    if let Some(c) = spec_created {
        if !is_rfc3339(c) {
            return Err(Error::Invalid(format!(
                "created {c:?} is not an RFC 3339 time like 2024-01-31T12:00:00Z"
            )));
        }
        return Ok(c.to_owned());
    }
    Ok(format_epoch(crate::tar::default_mtime()?))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (UTC).
pub fn format_epoch(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from day count (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// An RFC 3339 `date-time` as Go's `time.Time` reads it (skopeo, umoci,
/// podman): an upper-case `T` and `Z`, and no leap second (`:60`), which
/// RFC 3339 allows and Go refuses.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> u32 {
        std::str::from_utf8(&b[r])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(u32::MAX)
    };
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days_in_month || num(11..13) > 23 || num(14..16) > 59 || num(17..19) > 59 {
        return false;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &rest[1 + n..];
    }
    matches!(rest, [b'Z'])
        || (rest.len() == 6
            && matches!(rest[0], b'+' | b'-')
            && rest[1..3].iter().all(u8::is_ascii_digit)
            && rest[3] == b':'
            && rest[4..6].iter().all(u8::is_ascii_digit)
            && (rest[1] - b'0') * 10 + (rest[2] - b'0') < 24
            && (rest[4] - b'0') * 10 + (rest[5] - b'0') < 60)
}

/// What a field of a document must hold. Checks stop at the first wrong
/// field, which the message names (`history[0].created`).
type Checked = std::result::Result<(), String>;

fn wrong(at: &str, what: &str, v: &Value) -> String {
    let shown = v.to_string();
    let shown = if shown.chars().count() > 80 {
        format!("{}...", shown.chars().take(77).collect::<String>())
    } else {
        shown
    };
    format!("{at} must be {what}, not {shown}")
}

fn join_at(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// An object, and a checker for its fields: `null` counts as absent for
/// optional fields, as Go's encoding/json (every strict consumer) reads it.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    at: &'a str,
}

impl<'a> Fields<'a> {
    fn of(v: &'a Value, at: &'a str) -> std::result::Result<Self, String> {
        match v {
            Value::Object(map) => Ok(Fields { map, at }),
            other => Err(wrong(
                if at.is_empty() { "the document" } else { at },
                "an object",
                other,
            )),
        }
    }

    fn optional(&self, key: &str, check: impl Fn(&Value, &str) -> Checked) -> Checked {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(v) => check(v, &join_at(self.at, key)),
        }
    }

    fn required(&self, key: &str, check: impl Fn(&Value, &str) -> Checked) -> Checked {
        match self.map.get(key) {
            None | Some(Value::Null) => Err(format!("{} is missing", join_at(self.at, key))),
            Some(v) => check(v, &join_at(self.at, key)),
        }
    }
}

fn string(v: &Value, at: &str) -> Checked {
    v.is_string()
        .then_some(())
        .ok_or_else(|| wrong(at, "a string", v))
}

fn boolean(v: &Value, at: &str) -> Checked {
    v.is_boolean()
        .then_some(())
        .ok_or_else(|| wrong(at, "true or false", v))
}

/// A whole number that fits a signed 64-bit integer (Go's `int64`,
/// `time.Duration`): `1e2` or `1.0` is not one.
fn integer(v: &Value, at: &str) -> Checked {
    v.is_i64()
        .then_some(())
        .ok_or_else(|| wrong(at, "an integer", v))
}

fn strings(v: &Value, at: &str) -> Checked {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| string(x, &format!("{at}[{i}]"))),
        other => Err(wrong(at, "a list of strings", other)),
    }
}

/// `Env`: strings of the form `NAME=VALUE` with a name (image-spec
/// `config.md`; umoci refuses anything else).
fn env(v: &Value, at: &str) -> Checked {
    strings(v, at)?;
    for (i, x) in v.as_array().into_iter().flatten().enumerate() {
        let text = x.as_str().unwrap_or_default();
        if text.split_once('=').is_none_or(|(name, _)| name.is_empty()) {
            return Err(wrong(&format!("{at}[{i}]"), "NAME=VALUE with a name", x));
        }
    }
    Ok(())
}

/// An object of strings (annotations, labels).
fn string_map(v: &Value, at: &str) -> Checked {
    match v {
        Value::Object(m) => m.iter().try_for_each(|(k, x)| string(x, &join_at(at, k))),
        other => Err(wrong(at, "an object of strings", other)),
    }
}

/// An object of objects (`ExposedPorts`, `Volumes`: sets written as
/// `{"80/tcp": {}}`).
fn object_map(v: &Value, at: &str) -> Checked {
    match v {
        Value::Object(m) => m.iter().try_for_each(|(k, x)| match x {
            Value::Object(_) => Ok(()),
            other => Err(wrong(&join_at(at, k), "an object, {}", other)),
        }),
        other => Err(wrong(at, "an object like {\"80/tcp\": {}}", other)),
    }
}

fn time(v: &Value, at: &str) -> Checked {
    match v.as_str() {
        Some(s) if is_rfc3339(s) => Ok(()),
        _ => Err(wrong(
            at,
            "an RFC 3339 time like \"2024-01-31T12:00:00Z\"",
            v,
        )),
    }
}

/// `algorithm:encoded` (image-spec `descriptor.md`); sha256 and sha512
/// digests in their exact lowercase-hex length.
fn digest(v: &Value, at: &str) -> Checked {
    let ok = v.as_str().is_some_and(|s| {
        let Some((alg, enc)) = s.split_once(':') else {
            return false;
        };
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let hex = |n: usize| {
            enc.len() == n && enc.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        alg_ok
            && match alg {
                "sha256" => hex(64),
                "sha512" => hex(128),
                _ => {
                    !enc.is_empty()
                        && enc
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
                }
            }
    });
    ok.then_some(())
        .ok_or_else(|| wrong(at, "a digest like \"sha256:<64 hex digits>\"", v))
}

fn platform(v: &Value, at: &str) -> Checked {
    let f = Fields::of(v, at)?;
    f.required("architecture", string)?;
    f.required("os", string)?;
    f.optional("os.version", string)?;
    f.optional("os.features", strings)?;
    f.optional("variant", string)?;
    f.optional("features", strings)
}

/// A content descriptor (image-spec `descriptor.md`).
pub fn validate_descriptor(v: &Value, at: &str) -> Checked {
    let f = Fields::of(v, at)?;
    f.required("mediaType", string)?;
    f.required("digest", digest)?;
    f.required("size", |v, at| {
        v.is_u64()
            .then_some(())
            .ok_or_else(|| wrong(at, "a whole number of bytes", v))
    })?;
    f.optional("urls", strings)?;
    f.optional("annotations", string_map)?;
    f.optional("data", string)?;
    f.optional("artifactType", string)?;
    f.optional("platform", platform)
}

fn descriptors(v: &Value, at: &str) -> Checked {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, d)| validate_descriptor(d, &format!("{at}[{i}]"))),
        other => Err(wrong(at, "a list of descriptors", other)),
    }
}

fn schema_version(v: &Value, at: &str) -> Checked {
    (v.as_u64() == Some(2))
        .then_some(())
        .ok_or_else(|| wrong(at, "2", v))
}

/// Check an image config (image-spec `config.md`) against the types the
/// spec gives its fields, as strict consumers (skopeo, umoci, podman: Go's
/// encoding/json and time.Time) read them. Unknown fields are allowed, as
/// the spec requires. Used when building and by `verify`.
pub fn validate_config(doc: &Value) -> Checked {
    let f = Fields::of(doc, "")?;
    f.required("architecture", string)?;
    f.required("os", string)?;
    f.optional("created", time)?;
    f.optional("author", string)?;
    f.optional("variant", string)?;
    f.optional("os.version", string)?;
    f.optional("os.features", strings)?;
    f.optional("config", |v, at| {
        let c = Fields::of(v, at)?;
        for key in ["User", "WorkingDir", "StopSignal"] {
            c.optional(key, string)?;
        }
        for key in ["Entrypoint", "Cmd", "Shell", "OnBuild"] {
            c.optional(key, strings)?;
        }
        c.optional("Env", env)?;
        c.optional("ExposedPorts", object_map)?;
        c.optional("Volumes", object_map)?;
        c.optional("Labels", string_map)?;
        c.optional("ArgsEscaped", boolean)?;
        for key in ["Memory", "MemorySwap", "CpuShares"] {
            c.optional(key, integer)?;
        }
        c.optional("Healthcheck", |v, at| {
            let h = Fields::of(v, at)?;
            h.optional("Test", strings)?;
            for key in [
                "Interval",
                "Timeout",
                "StartPeriod",
                "StartInterval",
                "Retries",
            ] {
                h.optional(key, integer)?;
            }
            Ok(())
        })
    })?;
    f.required("rootfs", |v, at| {
        let r = Fields::of(v, at)?;
        r.required("type", |v, at| {
            (v.as_str() == Some("layers"))
                .then_some(())
                .ok_or_else(|| wrong(at, "\"layers\"", v))
        })?;
        r.required("diff_ids", |v, at| match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, d)| digest(d, &format!("{at}[{i}]"))),
            other => Err(wrong(at, "a list of digests", other)),
        })
    })?;
    f.optional("history", |v, at| match v {
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, h)| {
            let at = format!("{at}[{i}]");
            let h = Fields::of(h, &at)?;
            h.optional("created", time)?;
            for key in ["author", "created_by", "comment"] {
                h.optional(key, string)?;
            }
            h.optional("empty_layer", boolean)
        }),
        other => Err(wrong(at, "a list of history entries", other)),
    })
}

/// Check an image manifest (image-spec `manifest.md`), as
/// [`validate_config`] does a config.
pub fn validate_manifest(doc: &Value) -> Checked {
    let f = Fields::of(doc, "")?;
    f.required("schemaVersion", schema_version)?;
    f.optional("mediaType", string)?;
    f.optional("artifactType", string)?;
    f.required("config", validate_descriptor)?;
    f.required("layers", descriptors)?;
    f.optional("subject", validate_descriptor)?;
    f.optional("annotations", string_map)
}

/// Check an image index or `index.json` (image-spec `image-index.md`), as
/// [`validate_config`] does a config.
pub fn validate_index(doc: &Value) -> Checked {
    let f = Fields::of(doc, "")?;
    f.required("schemaVersion", schema_version)?;
    f.optional("mediaType", string)?;
    f.optional("artifactType", string)?;
    f.required("manifests", descriptors)?;
    f.optional("subject", validate_descriptor)?;
    f.optional("annotations", string_map)
}

/// Merge `patch` into `base`: objects recursively, anything else replaced.
fn merge(base: &mut Json, patch: &Json) {
    match (base, patch) {
        (Json::Object(b), Json::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The image config document for `spec` over layers with these diff_ids,
/// and the platform it declares.
pub fn config_document(spec: &ImageSpec, diff_ids: &[Sha256Digest]) -> Result<(Json, Platform)> {
    let created = created_time(spec.created.as_deref())?;
    for (field, value) in [
        ("architecture", &spec.architecture),
        ("os", &spec.os),
        ("variant", &spec.variant),
    ] {
        if let Some(v) = value {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(Error::Invalid(format!(
                    "{field} {v:?} is not a platform name like amd64, arm64, linux or v8"
                )));
            }
        }
    }
    let mut base = json!({
        "architecture": spec.architecture.as_deref().unwrap_or(host_architecture()),
        "os": spec.os.as_deref().unwrap_or("linux"),
        "created": created,
        "config": serde_json::to_value(&spec.config).expect("config serialises"),
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "history": diff_ids.iter().map(|_| json!({"created": created, "created_by": "nixoci"})).collect::<Vec<_>>(),
    });
    let obj = base.as_object_mut().expect("an object");
    if let Some(v) = &spec.variant {
        obj.insert("variant".into(), json!(v));
    }
    if let Some(a) = &spec.author {
        obj.insert("author".into(), json!(a));
    }
    let (doc, value) = merge_extra(
        &base,
        spec.extra_config.as_ref(),
        "extraConfig",
        &["rootfs"],
    )?;
    validate_config(&value).map_err(|m| {
        Error::Invalid(format!(
            "the image config is not valid: {m} (check extraConfig)"
        ))
    })?;
    let parsed: oci_spec::image::ImageConfiguration =
        serde_json::from_value(value).map_err(|e| {
            Error::Invalid(format!(
                "the image config is not valid (check extraConfig): {e}"
            ))
        })?;
    let platform = Platform {
        architecture: parsed.architecture().to_string(),
        os: parsed.os().to_string(),
        variant: parsed.variant().clone(),
        os_version: parsed.os_version().clone(),
        os_features: parsed.os_features().clone(),
    };
    Ok((doc, platform))
}

/// Merge user-given `extra` into `base`, refusing the fields nixoci
/// computes: the document (numbers of `extra` as written), and the same as
/// a `Value` for the checks.
fn merge_extra(
    base: &Value,
    extra: Option<&JsonObject>,
    what: &str,
    computed: &[&str],
) -> Result<(Json, Value)> {
    let mut doc = Json::from_value(base);
    if let Some(extra) = extra {
        if let Some(k) = computed.iter().find(|k| extra.contains_key(**k)) {
            return Err(Error::Invalid(format!(
                "{what} may not set {k:?}: nixoci computes it"
            )));
        }
        merge(&mut doc, &Json::Object(extra.clone()));
    }
    let value = doc.to_value();
    Ok((doc, value))
}

/// An image manifest over a config and layers; `extra` (e.g. `artifactType`,
/// `subject`) is merged in last.
pub fn manifest_document(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
    extra: Option<&JsonObject>,
) -> Result<Json> {
    let mut base = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config,
        "layers": layers,
    });
    if !annotations.is_empty() {
        base["annotations"] = json!(annotations);
    }
    let (doc, value) = merge_extra(
        &base,
        extra,
        "extraManifest",
        &["schemaVersion", "mediaType", "config", "layers"],
    )?;
    validate_manifest(&value).map_err(|m| {
        Error::Invalid(format!(
            "the image manifest is not valid: {m} (check extraManifest)"
        ))
    })?;
    serde_json::from_value::<oci_spec::image::ImageManifest>(value)
        .map_err(|e| Error::Invalid(format!("the image manifest is not valid: {e}")))?;
    Ok(doc)
}

/// An image index over descriptors; `extra` is merged in last.
pub fn index_document(
    manifests: &[Descriptor],
    annotations: &BTreeMap<String, String>,
    extra: Option<&JsonObject>,
) -> Result<Json> {
    let mut base = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": manifests,
    });
    if !annotations.is_empty() {
        base["annotations"] = json!(annotations);
    }
    let (doc, value) = merge_extra(
        &base,
        extra,
        "extraIndex",
        &["schemaVersion", "mediaType", "manifests"],
    )?;
    validate_index(&value).map_err(|m| {
        Error::Invalid(format!(
            "the image index is not valid: {m} (check extraIndex)"
        ))
    })?;
    serde_json::from_value::<oci_spec::image::ImageIndex>(value)
        .map_err(|e| Error::Invalid(format!("the image index is not valid: {e}")))?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn epoch_formatting() {
        assert_eq!(format_epoch(1), "1970-01-01T00:00:01Z");
        assert_eq!(format_epoch(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_epoch(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn rfc3339_check() {
        for good in ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00.123+02:00"] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "2024-01-31",
            "2024-01-31 12:00:00Z",
            "2024-01-31T12:00:00",
            "2024-01-31T12:00:00.Z",
            "1970-01-01t00:00:01z",
            "2016-12-31T23:59:60Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn extra_config_merges_and_cannot_touch_rootfs() {
        let mut spec = ImageSpec {
            architecture: Some("arm64".into()),
            ..Default::default()
        };
        spec.config.env = Some(vec!["A=1".into()]);
        let extra = |v: Value| match Json::from_value(&v) {
            Json::Object(m) => Some(m),
            _ => unreachable!(),
        };
        spec.extra_config = extra(
            json!({"config": {"Env": ["B=2"], "Healthcheck": {"Test": ["NONE"]}}, "os.features": ["x"]}),
        );
        let (doc, platform) = config_document(&spec, &[]).unwrap();
        let doc = doc.to_value();
        assert_eq!(doc["config"]["Env"], json!(["B=2"]));
        assert_eq!(doc["config"]["Healthcheck"]["Test"], json!(["NONE"]));
        assert_eq!(platform.architecture, "arm64");
        spec.extra_config = extra(json!({"rootfs": {}}));
        assert!(config_document(&spec, &[])
            .unwrap_err()
            .to_string()
            .contains("rootfs"));
    }
}
