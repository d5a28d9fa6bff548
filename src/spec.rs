//! The JSON input model: what a layer, an image and a layout are made of.
//!
//! Every struct refuses unknown fields, so a typo is an error, not a silently
//! ignored setting. Relative paths in a spec are relative to the directory of
//! the spec file, so a spec means the same thing from any working directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::compress::Compression;
use crate::error::{Error, IoContext, Result};

/// What goes into one layer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayerSpec {
    /// Files, directories and symlinks to put into the layer.
    #[serde(default, deserialize_with = "objects")]
    pub files: Vec<FileSpec>,
    /// How the tar stream is compressed.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[serde(default)]
    pub level: Option<u32>,
    /// Store paths added at their own path (typically a runtime closure).
    #[serde(default)]
    pub closure: Option<ClosureSpec>,
    /// Built layer directories whose store paths this layer leaves out.
    #[serde(default)]
    pub base: Vec<PathBuf>,
}

/// One source and where it lands.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// A file, directory or symlink on the building machine.
    pub source: PathBuf,
    /// Absolute path in the image. A trailing `/` puts a file or symlink
    /// inside that directory under its own name. Absent: the source's own
    /// (absolute) path.
    #[serde(default)]
    pub destination: Option<String>,
    /// Permission bits, as an octal string like `"0755"`.
    #[serde(default, deserialize_with = "deserialize_mode")]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

/// Store paths to include, as a list or as a file Nix wrote.
#[derive(Clone, Debug)]
pub enum ClosureSpec {
    /// Store paths, each added at its own path.
    Paths(Vec<PathBuf>),
    /// An `exportReferencesGraph` file, or a structured-attrs `.attrs.json`
    /// whose attribute `attr` lists `{path, ...}` objects.
    File { file: PathBuf, attr: Option<String> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosureFile {
    file: PathBuf,
    #[serde(default)]
    attr: Option<String>,
}

impl<'de> Deserialize<'de> for ClosureSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            v @ Value::Array(_) => serde_json::from_value(v)
                .map(ClosureSpec::Paths)
                .map_err(D::Error::custom),
            v @ Value::Object(_) => {
                let f: ClosureFile = serde_json::from_value(v).map_err(D::Error::custom)?;
                Ok(ClosureSpec::File {
                    file: f.file,
                    attr: f.attr,
                })
            }
            _ => Err(D::Error::custom(
                "closure must be a list of store paths or {\"file\": PATH, \"attr\"?: NAME}",
            )),
        }
    }
}

fn deserialize_mode<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    let v = Option::<Value>::deserialize(d)?;
    let mode = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
        {
            u32::from_str_radix(&s, 8).map_err(D::Error::custom)?
        }
        // A JSON number would be decimal: 755 would mean 0o1363. Refused
        // rather than guessed.
        Some(other) => {
            return Err(D::Error::custom(format!(
                "mode must be an octal string like \"0755\", not {other}"
            )))
        }
    };
    if mode > 0o7777 {
        return Err(D::Error::custom(format!(
            "mode {mode:o} (octal) has bits beyond 07777"
        )));
    }
    Ok(Some(mode))
}

/// A layer of an image: built here from a spec, or a directory `nixoci layer`
/// already wrote (given as a string path).
#[derive(Clone, Debug)]
pub enum LayerRef {
    Dir(PathBuf),
    Inline(Box<LayerSpec>),
}

impl<'de> Deserialize<'de> for LayerRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(LayerRef::Dir(PathBuf::from(s))),
            v @ Value::Object(_) => from_value_at(v)
                .map(|s| LayerRef::Inline(Box::new(s)))
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "a layer is either a layer spec object or the path of a built layer directory",
            )),
        }
    }
}

/// The container-runtime part of the image config (the OCI `config` object),
/// with the field names the OCI image spec uses.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_set"
    )]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_set"
    )]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
}

/// `ExposedPorts` and `Volumes` are sets, written in OCI JSON as objects with
/// empty values; a plain list is accepted too.
fn deserialize_set<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<BTreeMap<String, Value>>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok((s, Value::Object(Default::default()))),
                other => Err(D::Error::custom(format!(
                    "expected a string, found {other}"
                ))),
            })
            .collect::<std::result::Result<_, _>>()
            .map(Some),
        Some(Value::Object(m)) => Ok(Some(
            m.into_iter()
                .map(|(k, _)| (k, Value::Object(Default::default())))
                .collect(),
        )),
        Some(other) => Err(D::Error::custom(format!(
            "expected a list of strings or an object, found {other}"
        ))),
    }
}

/// A whole image, for `nixoci build` (and `nixoci manifest`, without tags).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageSpec {
    /// Bottom layer first.
    #[serde(default)]
    pub layers: Vec<LayerRef>,
    /// GOARCH-style architecture (`amd64`, `arm64`, ...). Default: the
    /// building machine's.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Default: `linux`.
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    /// RFC 3339 time. Default: `SOURCE_DATE_EPOCH` if set, else
    /// 1970-01-01T00:00:01Z.
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub config: ContainerConfig,
    /// Merged (recursively for objects) into the config document last: any
    /// OCI config field nixoci has no dedicated setting for.
    #[serde(default)]
    pub extra_config: Option<crate::image::JsonObject>,
    /// A directory written by `nixoci config`: its config and layers are
    /// used, and the settings above (layers, platform, config) must be unset.
    #[serde(default)]
    pub image_config: Option<PathBuf>,
    /// Manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Merged into the manifest document last (e.g. `artifactType`,
    /// `subject`); may not set `schemaVersion`, `mediaType`, `config` or
    /// `layers`.
    #[serde(default)]
    pub extra_manifest: Option<crate::image::JsonObject>,
    /// Tags (`org.opencontainers.image.ref.name`). Default: `["latest"]`.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl ImageSpec {
    /// The config-shaping fields that are set (they conflict with
    /// `imageConfig`).
    pub fn config_settings(&self) -> Vec<&'static str> {
        let c = &self.config;
        let config_set = c.user.is_some()
            || c.exposed_ports.is_some()
            || c.env.is_some()
            || c.entrypoint.is_some()
            || c.cmd.is_some()
            || c.volumes.is_some()
            || c.working_dir.is_some()
            || c.labels.is_some()
            || c.stop_signal.is_some();
        [
            ("layers", !self.layers.is_empty()),
            ("architecture", self.architecture.is_some()),
            ("os", self.os.is_some()),
            ("variant", self.variant.is_some()),
            ("author", self.author.is_some()),
            ("created", self.created.is_some()),
            ("config", config_set),
            ("extraConfig", self.extra_config.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// A layout from built manifest directories, for `nixoci layout`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayoutSpec {
    /// Directories written by `nixoci manifest`. One: the tags name that
    /// manifest. Several (one per platform): the tags name an image index
    /// over them.
    pub manifests: Vec<PathBuf>,
    /// Default: `["latest"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Annotations of the image index (several manifests), or of
    /// `index.json` (one manifest).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Merged into `index.json` last (e.g. its `annotations`).
    #[serde(default)]
    pub extra_index: Option<crate::image::JsonObject>,
    /// With several manifests, also name each one `TAG-OS-ARCH[-VARIANT]`
    /// in `index.json`, for tools that cannot choose a platform from an
    /// index (umoci 0.4).
    #[serde(default)]
    pub platform_tags: bool,
}

/// A struct from a JSON object only: serde would also take a positional
/// array, which would get around the refusal of unknown fields.
fn object<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> std::result::Result<T, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(d)? {
        v @ Value::Object(_) => from_value_at(v).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected an object, found {other}"
        ))),
    }
}

/// `T` from a JSON value; an error leads with the path of the field at
/// fault inside it (`files[0].uid: invalid type ...`).
fn from_value_at<T: serde::de::DeserializeOwned>(v: Value) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        at_path(&at, &e.into_inner().to_string())
    })
}

/// `message` (which may itself start with a path, `[0].uid: ...` or
/// `.files[0]: ...`, from a nested value) placed at the path `at`.
fn at_path(at: &str, message: &str) -> String {
    if at.is_empty() || at == "." {
        message.trim_start_matches('.').to_owned()
    } else if message.starts_with(['[', '.']) {
        format!("{at}{message}")
    } else {
        format!("{at}: {message}")
    }
}

/// The `files` list, each entry from a JSON object only (see [`object`]).
fn objects<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    use serde::de::Error as _;
    let items = Vec::<Value>::deserialize(d)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            v @ Value::Object(_) => {
                from_value_at(v).map_err(|e| D::Error::custom(format!("[{i}].{e}")))
            }
            other => Err(D::Error::custom(format!(
                "[{i}]: expected an object, found {other}"
            ))),
        })
        .collect()
}

/// Read and parse a JSON spec file (`-`: standard input).
pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).at("(standard input)")?;
        b
    } else {
        std::fs::read(path).at(path)?
    };
    parse_json(path, &bytes)
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

/// The directory relative paths in the spec at `spec_path` are resolved
/// against (the working directory for a spec read from standard input).
pub fn base_dir(spec_path: &Path) -> PathBuf {
    if spec_path == Path::new("-") {
        return PathBuf::from(".");
    }
    match spec_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `path` if absolute, else `base/path`.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// A destination path in an image, checked: absolute, normalised, no `..`,
/// no empty or `.` component, no NUL. Returns the components joined by `/`
/// without the leading slash (empty for `/`) and whether it ended in `/`.
pub fn parse_destination(dest: &str) -> Result<(String, bool)> {
    let bad = |reason: &str| Error::Destination {
        destination: dest.to_owned(),
        reason: reason.to_owned(),
    };
    if dest.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    let rest = dest
        .strip_prefix('/')
        .ok_or_else(|| bad("destinations must be absolute (start with /)"))?;
    if rest.is_empty() {
        return Ok((String::new(), true));
    }
    let trailing = rest.ends_with('/');
    let body = rest.strip_suffix('/').unwrap_or(rest);
    for comp in body.split('/') {
        match comp {
            "" => return Err(bad("it has an empty component (//)")),
            c if c.len() > 255 => {
                return Err(bad(
                    "a component is longer than 255 bytes, the limit of Linux file systems",
                ))
            }
            "." => return Err(bad("it has a '.' component; write the normalised path")),
            ".." => return Err(bad("'..' is not allowed in a destination")),
            _ => {}
        }
    }
    Ok((body.to_owned(), trailing))
}

/// Tags follow the distribution spec's grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid tag {tag:?}: a tag is 1-128 characters of [A-Za-z0-9_.-] and does not start with '.' or '-'"
        )))
    }
}

/// The tags to write: the given ones (validated, duplicates dropped, order
/// kept) or `latest`.
pub fn tags_or_default(tags: &[String]) -> Result<Vec<String>> {
    if tags.is_empty() {
        return Ok(vec!["latest".to_owned()]);
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        validate_tag(t)?;
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(parse_destination("/").unwrap(), (String::new(), true));
        assert_eq!(parse_destination("/a/b").unwrap(), ("a/b".into(), false));
        assert_eq!(parse_destination("/a/b/").unwrap(), ("a/b".into(), true));
        for bad in ["a/b", "", "/a//b", "/a/../b", "/..", "/a/./b", "/a\0b"] {
            assert!(parse_destination(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn modes() {
        let f: FileSpec = serde_json::from_str(r#"{"source":"x","mode":"0755"}"#).unwrap();
        assert_eq!(f.mode, Some(0o755));
        for bad in [
            r#"493"#,
            r#""9""#,
            r#""17777""#,
            r#""+755""#,
            r#""""#,
            r#""0o755""#,
        ] {
            let text = format!(r#"{{"source":"x","mode":{bad}}}"#);
            assert!(
                serde_json::from_str::<FileSpec>(&text).is_err(),
                "mode {bad} accepted"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e =
            serde_json::from_str::<LayerSpec>(r#"{"files":[],"compresion":"gzip"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `compresion`"), "{e}");
        let e = serde_json::from_str::<ImageSpec>(r#"{"config":{"Entrypont":["x"]}}"#).unwrap_err();
        assert!(e.to_string().contains("Entrypont"), "{e}");
    }

    #[test]
    fn tags() {
        for good in ["latest", "v1.2.3", "_x", "A-b_c.d"] {
            validate_tag(good).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"x".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(tags_or_default(&[]).unwrap(), vec!["latest"]);
    }

    #[test]
    fn sets_accept_lists_and_objects() {
        let c: ContainerConfig =
            serde_json::from_str(r#"{"ExposedPorts":["80/tcp"],"Volumes":{"/data":{}}}"#).unwrap();
        assert!(c.exposed_ports.unwrap().contains_key("80/tcp"));
        assert!(c.volumes.unwrap().contains_key("/data"));
    }
}
