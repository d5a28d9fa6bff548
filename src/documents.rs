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
