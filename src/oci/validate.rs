//! The types the image spec gives each field of a config, manifest and
//! index (image-spec `config.md`, `manifest.md`, `image-index.md`,
//! `descriptor.md`), checked as strict consumers read them (skopeo, umoci,
//! podman: Go's encoding/json and time.Time): once when a document is
//! built, whatever was merged into it, and again by `verify`.

use serde_json::{Map, Value};

use crate::oci::time::is_rfc3339;

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

/// A working directory: absolute, or empty (unset, as Docker writes it);
/// runtimes refuse a relative one ("Cwd must be an absolute path").
fn working_dir(v: &Value, at: &str) -> Checked {
    match v.as_str() {
        Some(s) if s.is_empty() || s.starts_with('/') => Ok(()),
        _ => Err(wrong(
            at,
            "an absolute path (runtimes refuse a relative working directory)",
            v,
        )),
    }
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
        for key in ["User", "StopSignal"] {
            c.optional(key, string)?;
        }
        c.optional("WorkingDir", working_dir)?;
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
