//! The OCI documents nixoci writes: image config, image manifest, image
//! index (image-spec `config.md`, `manifest.md`, `image-index.md`), built
//! over the descriptors of their blobs (the descriptors themselves, and
//! platforms, are in [`crate::oci::descriptor`]).
//!
//! Documents are assembled as JSON values, checked against the types the
//! image spec gives every field ([`crate::oci::validate`], which `verify` uses
//! too) and by parsing them into the `oci-spec` types, and written in the
//! one canonical form ([`crate::oci::json`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::oci::descriptor::*;
use crate::oci::digest::Sha256Digest;
use crate::oci::fields::{check_extra_keys, Document};
use crate::oci::json::{Json, JsonObject};
use crate::oci::time::created_time;
use crate::oci::validate::{validate_config, validate_index, validate_manifest};
use crate::oci::MediaType;
use crate::spec::ImageSpec;

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
/// and the platform it declares. With a base image's config (`base`: the
/// config, and how messages name the base; its layers are the first of
/// `diff_ids`), what it sets is inherited (see `inherited`). An error
/// blames what is wrong: the spec's own `config`, the config inherited
/// from the base, or `extraConfig`.
pub fn config_document(
    spec: &ImageSpec,
    diff_ids: &[Sha256Digest],
    base: Option<(&Value, &str)>,
) -> Result<(Json, Platform)> {
    let created = created_time(spec.created.as_deref())?;
    for (field, value) in [
        ("architecture", &spec.architecture),
        ("os", &spec.os),
        ("variant", &spec.variant),
    ] {
        if let Some(v) = value {
            platform_field(field, v).map_err(Error::Invalid)?;
        }
    }
    let base_name = base.map(|(_, name)| name);
    let from = base
        .map(|(b, name)| inherited(b, name, spec, diff_ids.len()))
        .transpose()?;
    let own_layers = diff_ids.len() - from.as_ref().map_or(0, |f| f.layers);
    let mut history: Vec<Value> = from.as_ref().map(|f| f.history.clone()).unwrap_or_default();
    history.extend((0..own_layers).map(|_| json!({"created": created, "created_by": "nixoci"})));
    let mut base = json!({
        "architecture": spec.architecture.as_deref()
            .or(from.as_ref().map(|f| f.architecture.as_str()))
            .unwrap_or(host_architecture()),
        "os": spec.os.as_deref().or(from.as_ref().map(|f| f.os.as_str())).unwrap_or("linux"),
        "created": created,
        "config": match &from {
            Some(f) => Value::Object(f.config.clone()),
            None => serde_json::to_value(&spec.config).expect("config serialises"),
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "history": history,
    });
    let obj = base.as_object_mut().expect("an object");
    if let Some(v) = spec
        .variant
        .as_ref()
        .or(from.as_ref().and_then(|f| f.variant.as_ref()))
    {
        obj.insert("variant".into(), json!(v));
    }
    if let Some(a) = &spec.author {
        obj.insert("author".into(), json!(a));
    }
    if let Err(m) = validate_config(&base) {
        // The spec's own settings, or what the base gave them?
        let own = json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": serde_json::to_value(&spec.config).expect("config serialises"),
        });
        return Err(Error::Invalid(match (validate_config(&own), base_name) {
            // Named as the spec writes it (`Env[0]` of its own list).
            (Err(own), _) => format!("the image config is not valid: {own}"),
            (Ok(()), Some(name)) => {
                format!("the config it inherits from the {name} is not valid: {m}")
            }
            (Ok(()), None) => format!("the image config is not valid: {m}"),
        }));
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
    if let Some(extra) = &spec.extra_config {
        // What extraConfig sets is held to the rules of the spec's own
        // fields: it is the same config.
        for field in ["architecture", "os", "variant"] {
            if let Some(v) = extra.get(field).map(|_| &value[field]) {
                let v = v.as_str().unwrap_or_default();
                platform_field(field, v)
                    .map_err(|m| Error::Invalid(format!("extraConfig: {m}")))?;
            }
        }
        if extra.contains_key("history") {
            history_matches_layers(&value, diff_ids.len())
                .map_err(|m| Error::Invalid(format!("extraConfig: {m}")))?;
        }
    }
    let parsed: oci_spec::image::ImageConfiguration =
        serde_json::from_value(value).map_err(|e| {
            Error::Invalid(format!(
                "the image config is not valid: {e}{}",
                if spec.extra_config.is_some() {
                    " (check extraConfig)"
                } else {
                    ""
                }
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

/// A platform field (`architecture`, `os`, `variant`) of a config: a
/// non-empty name of letters, digits, `.`, `_` and `-`, and for the
/// architecture the OCI (Go) name, not the Nix or `uname` one (`x86_64`),
/// which no runtime or registry matches.
fn platform_field(field: &str, v: &str) -> std::result::Result<(), String> {
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "{field} {v:?} is not a platform name like amd64, arm64, linux or v8"
        ));
    }
    if field == "architecture" {
        if let Some(oci) = crate::oci::descriptor::oci_architecture(v) {
            return Err(format!(
                "architecture {v:?} is the Nix (uname) name; OCI images and registries call it {oci:?}: write \"architecture\": {oci:?}"
            ));
        }
    }
    Ok(())
}

/// A config's `history`, when given, has one entry that is not
/// `empty_layer` for each layer (image-spec `config.md`): tools that show
/// an image's history pair them in order.
fn history_matches_layers(config: &Value, layers: usize) -> std::result::Result<(), String> {
    let Some(history) = config.get("history").and_then(Value::as_array) else {
        return Ok(());
    };
    let own = history
        .iter()
        .filter(|h| h.get("empty_layer").and_then(Value::as_bool) != Some(true))
        .count();
    if own != layers {
        return Err(format!(
            "history has {own} entries that are not \"empty_layer\": true for {layers} layer(s); it needs one per layer, in order (mark the others \"empty_layer\": true, or leave history to nixoci)"
        ));
    }
    Ok(())
}

/// What an image inherits from its base's config.
struct Inherited {
    /// The `config` object: the base's, with the new image's settings.
    config: serde_json::Map<String, Value>,
    history: Vec<Value>,
    architecture: String,
    os: String,
    variant: Option<String>,
    /// How many layers the base has.
    layers: usize,
}

/// The base config `base` (of an image whose layers are the first of
/// `total`; `name` names it), with `spec`'s settings applied by these
/// rules (docs/base-images.md, "Building on a base image"):
///
/// - `Env`: merged by variable name; a variable the new image sets keeps
///   the base's place, a new one comes after the base's;
/// - `ExposedPorts`, `Volumes`: the union; `Labels`: merged by name, the
///   new image's value winning;
/// - `Entrypoint`, `Cmd`, `WorkingDir`, `User`, `StopSignal`: the new
///   image's when it sets them; setting `Entrypoint` without `Cmd` drops
///   the base's `Cmd`, as a Dockerfile's `ENTRYPOINT` does (the base's
///   arguments were for the base's entrypoint);
/// - every other field of the base's `config` (`Healthcheck`, ...) is kept;
/// - `history`: the base's, then one entry per new layer;
/// - the platform must be the base's: a different one is an error.
fn inherited(base: &Value, name: &str, spec: &ImageSpec, total: usize) -> Result<Inherited> {
    let text = |k: &str| base[k].as_str().map(str::to_owned);
    let (architecture, os) = (
        text("architecture").unwrap_or_default(),
        text("os").unwrap_or_default(),
    );
    let variant = text("variant");
    for (field, asked, has) in [
        ("architecture", &spec.architecture, Some(&architecture)),
        ("os", &spec.os, Some(&os)),
        ("variant", &spec.variant, variant.as_ref()),
    ] {
        if let Some(a) = asked {
            if Some(a) != has {
                return Err(Error::Invalid(format!(
                    "the image's {field} is {a:?}, but the {name}'s is {:?}: build for the base's platform, or choose the base image for this one",
                    has.map(String::as_str).unwrap_or("unset")
                )));
            }
        }
    }
    let layers = base["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    if layers > total {
        return Err(Error::Invalid(format!(
            "the {name}'s config lists {layers} diff_ids, more than the image's {total} layers"
        )));
    }
    let history: Vec<Value> = base["history"].as_array().cloned().unwrap_or_default();
    // The base's settings, nulls dropped (Docker writes "Cmd": null).
    let mut config: serde_json::Map<String, Value> = base["config"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let new = &spec.config;
    if let Some(env) = &new.env {
        let mut merged: Vec<String> = config
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let name = |e: &str| e.split_once('=').map_or(e, |(n, _)| n).to_owned();
        for e in env {
            match merged.iter().position(|b| name(b) == name(e)) {
                Some(i) => merged[i] = e.clone(),
                None => merged.push(e.clone()),
            }
        }
        config.insert("Env".into(), json!(merged));
    }
    for (key, set) in [
        ("ExposedPorts", &new.exposed_ports),
        ("Volumes", &new.volumes),
    ] {
        if let Some(set) = set {
            let mut m = config
                .get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for k in set.keys() {
                m.insert(k.clone(), json!({}));
            }
            config.insert(key.into(), Value::Object(m));
        }
    }
    if let Some(labels) = &new.labels {
        let mut m = config
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in labels {
            m.insert(k.clone(), json!(v));
        }
        config.insert("Labels".into(), Value::Object(m));
    }
    if new.entrypoint.is_some() && new.cmd.is_none() {
        config.remove("Cmd");
    }
    for (key, value) in [
        ("Entrypoint", new.entrypoint.as_ref().map(|v| json!(v))),
        ("Cmd", new.cmd.as_ref().map(|v| json!(v))),
        ("WorkingDir", new.working_dir.as_ref().map(|v| json!(v))),
        ("User", new.user.as_ref().map(|v| json!(v))),
        ("StopSignal", new.stop_signal.as_ref().map(|v| json!(v))),
    ] {
        if let Some(v) = value {
            config.insert(key.into(), v);
        }
    }
    Ok(Inherited {
        config,
        history,
        architecture,
        os,
        variant,
        layers,
    })
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
        let document = match what {
            "extraConfig" => Document::Config,
            "extraManifest" => Document::Manifest,
            _ => Document::Index,
        };
        check_extra_keys(&Json::Object(extra.clone()).to_value(), document, what)
            .map_err(Error::Invalid)?;
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
        "mediaType": MediaType::MANIFEST,
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
        "mediaType": MediaType::INDEX,
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
        let (doc, platform) = config_document(&spec, &[], None).unwrap();
        let doc = doc.to_value();
        assert_eq!(doc["config"]["Env"], json!(["B=2"]));
        assert_eq!(doc["config"]["Healthcheck"]["Test"], json!(["NONE"]));
        assert_eq!(platform.architecture, "arm64");
        spec.extra_config = extra(json!({"rootfs": {}}));
        assert!(config_document(&spec, &[], None)
            .unwrap_err()
            .to_string()
            .contains("rootfs"));
        // Issue 21: a key no spec defines there, a relative working
        // directory, the Nix name of an architecture.
        spec.extra_config = extra(json!({"Healthcheck": {"Test": ["NONE"]}}));
        let err = config_document(&spec, &[], None).unwrap_err().to_string();
        assert!(
            err.contains("extraConfig.Healthcheck is not a field the OCI image spec or Docker defines there; did you mean extraConfig.config.Healthcheck?"),
            "{err}"
        );
        spec.extra_config = extra(json!({"config": {"WorkingDir": "app"}}));
        let err = config_document(&spec, &[], None).unwrap_err().to_string();
        assert!(
            err.contains("config.WorkingDir must be an absolute path (runtimes refuse a relative working directory), not \"app\""),
            "{err}"
        );
        // What extraConfig sets is checked as the spec's own fields are
        // (the platform names, history against the layers), and Docker's
        // fields have their types.
        spec.architecture = None;
        let layer: Sha256Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        for (extra_json, message) in [
            (json!({"architecture": "x86_64"}), "extraConfig: architecture \"x86_64\" is the Nix (uname) name; OCI images and registries call it \"amd64\""),
            (json!({"architecture": "aarch64"}), "call it \"arm64\""),
            (json!({"os": ""}), "extraConfig: os \"\" is not a platform name"),
            (json!({"variant": ""}), "extraConfig: variant \"\" is not a platform name"),
            (json!({"history": []}), "extraConfig: history has 0 entries that are not \"empty_layer\": true for 1 layer(s)"),
            (json!({"history": [{"created_by": "a"}, {"created_by": "b"}]}), "history has 2 entries"),
            (json!({"config": {"Domainname": 5}}), "config.Domainname must be a string, not 5"),
            (json!({"config": {"Tty": "yes"}}), "config.Tty must be"),
        ] {
            spec.extra_config = extra(extra_json.clone());
            let err = config_document(&spec, std::slice::from_ref(&layer), None)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{extra_json}: {err}");
        }
        for fine in [
            json!({"architecture": "arm64", "variant": "v8"}),
            json!({"history": [{"created_by": "a"}, {"created_by": "env", "empty_layer": true}]}),
        ] {
            spec.extra_config = extra(fine.clone());
            config_document(&spec, std::slice::from_ref(&layer), None)
                .unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
        spec.extra_config = None;
        spec.architecture = Some("x86_64".into());
        let err = config_document(&spec, &[], None).unwrap_err().to_string();
        assert!(
            err.contains("architecture \"x86_64\" is the Nix (uname) name; OCI images and registries call it \"amd64\""),
            "{err}"
        );
    }
}
