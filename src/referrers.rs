//! Referrers in a layout: artifacts attached to an image (an SBOM, a
//! signature) as the OCI 1.1 image spec makes them: an image manifest with
//! an `artifactType`, the empty config, the files as layers named by
//! `org.opencontainers.image.title`, and a `subject` naming the image's
//! manifest. The layout lists each with its `artifactType` and without
//! `ref.name`, as the referrers API lists them, in the layout nested at
//! `referrers/` ([`crate::layout::nested`]), so that `index.json` keeps
//! the image alone; `push` sends them after their subject.
//!
//! Also the form a referrers list gives each referrer
//! ([`listing_entry`]) and the fallback index holding such a list
//! ([`fallback_document`]), which `push` writes to a registry without the
//! referrers API and `diff` counts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, IoContext, Result};
use crate::layout::{nested, BlobDir, Layout};
use crate::oci::descriptor::{Descriptor, ANNOTATION_REF_NAME};
use crate::oci::digest::Sha256Digest;
use crate::oci::json::{canonical_json, parse_json, read_json};
use crate::oci::MediaType;

use crate::artifact::ANNOTATION_TITLE;

/// The digest of the empty descriptor's content, `{}` (image spec).
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// One file of an artifact.
#[derive(Clone, Debug)]
pub struct ArtifactFile {
    pub name: String,
    pub media_type: MediaType,
    pub bytes: Vec<u8>,
}

/// The artifact manifest document: `files` as layers, the empty config,
/// `subject`, `annotations` (canonical JSON, so the same inputs give the
/// same digest).
pub fn artifact_manifest(
    artifact_type: &str,
    subject: Option<&Descriptor>,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> Value {
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": MediaType::EMPTY,
            "digest": EMPTY_DIGEST,
            "size": 2,
            "data": "e30=",
        },
        "layers": layers,
    });
    if let Some(s) = subject {
        doc["subject"] = json!({
            "mediaType": s.media_type,
            "digest": s.digest,
            "size": s.size,
        });
    }
    if !annotations.is_empty() {
        doc["annotations"] = json!(annotations);
    }
    doc
}

/// The referrers of `layout` whose subject is one of `subjects`, or
/// another of these referrers (a signature of an SBOM, as `oras cp -r`
/// copies it), each with its subject's digest, in the order the layout
/// lists them ([`Layout::referrers`]) but each after its subject: what
/// `push` sends after the image, and `diff` counts.
pub fn of_subjects(
    layout: &Layout,
    subjects: &BTreeSet<Sha256Digest>,
) -> Result<Vec<(Descriptor, Sha256Digest)>> {
    let mut pending = Vec::new();
    for r in layout.referrers()? {
        let bytes = layout.read_document(&r)?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{}: referrer {}: {e}",
                layout.dir().display(),
                r.digest
            ))
        })?;
        let subject = doc["subject"]["digest"]
            .as_str()
            .and_then(Sha256Digest::parse);
        if let Some(s) = subject {
            pending.push((r, s));
        }
    }
    let mut reached = subjects.clone();
    let mut out = Vec::new();
    loop {
        let (now, later): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(_, s)| reached.contains(s));
        if now.is_empty() {
            return Ok(out);
        }
        reached.extend(now.iter().map(|(r, _)| r.digest.clone()));
        out.extend(now);
        pending = later;
    }
}

/// The artifact type of a referrer's `manifest`, as a referrers list gives
/// it (image spec 1.1): its `artifactType`, else its config's media type.
pub fn artifact_type_of(manifest: &Value) -> Option<&str> {
    manifest["artifactType"]
        .as_str()
        .or_else(|| manifest["config"]["mediaType"].as_str())
}

/// The descriptor a referrers list gives the referrer manifest `bytes`
/// described by `desc`, as the referrers API gives it (distribution spec
/// 1.1) and the fallback index copies it: media type, digest and size, the
/// manifest's `artifactType` (else its config's media type) and its
/// annotations.
pub fn listing_entry(desc: &Descriptor, bytes: &[u8]) -> Value {
    let manifest: Value = serde_json::from_slice(bytes).unwrap_or_default();
    let mut entry = json!({
        "mediaType": desc.media_type,
        "digest": desc.digest,
        "size": desc.size,
    });
    if let Some(t) = artifact_type_of(&manifest) {
        entry["artifactType"] = json!(t);
    }
    if let Some(a) = manifest.get("annotations").filter(|a| a.is_object()) {
        entry["annotations"] = a.clone();
    }
    entry
}

/// The referrers fallback index (an image index, tagged
/// `sha256-<subject hex>` in a registry without the referrers API)
/// listing `entries` ([`listing_entry`]), in that order.
pub fn fallback_document(entries: Vec<Value>) -> Value {
    json!({"schemaVersion": 2, "mediaType": MediaType::INDEX, "manifests": entries})
}

/// Write an artifact of `files` whose subject is `subject` into the layout
/// at `dir` (blobs, then the manifest), and list it in `index.json` as a
/// referrer in the layout nested at `referrers/` (once: attaching the same
/// artifact again changes nothing; see `add_to_index`). Returns the
/// manifest's descriptor.
pub fn attach(
    dir: &Path,
    subject: &Descriptor,
    artifact_type: &str,
    files: &[ArtifactFile],
    annotations: &BTreeMap<String, String>,
) -> Result<Descriptor> {
    crate::oci::media_type::validate_media_type(artifact_type).map_err(Error::Invalid)?;
    for f in files {
        crate::artifact::validate_name(&f.name)?;
        crate::oci::media_type::validate_media_type(f.media_type.as_str())
            .map_err(Error::Invalid)?;
    }
    // Refused before any blob is written: nothing half-attached.
    nested::check_own_blobs(dir)?;
    nested::check_shape(dir)?;
    let blobs = BlobDir::new(dir);
    blobs.remove_stale();
    blobs.write_json(&json!({}), MediaType::EMPTY)?;
    let mut layers = Vec::new();
    for f in files {
        let mut w = blobs.writer()?;
        w.write_all(&f.bytes).at(dir)?;
        let (digest, size) = w.complete()?;
        layers.push(Descriptor {
            media_type: f.media_type.clone(),
            digest,
            size,
            platform: None,
            annotations: [(ANNOTATION_TITLE.to_owned(), f.name.clone())].into(),
            artifact_type: None,
        });
    }
    let doc = artifact_manifest(artifact_type, Some(subject), &layers, annotations);
    let mut desc = blobs.write_json(&doc, MediaType::MANIFEST)?;
    desc.artifact_type = Some(artifact_type.to_owned());
    desc.annotations = annotations.clone();
    desc.annotations.remove(ANNOTATION_REF_NAME);
    add_to_index(dir, &desc)?;
    Ok(desc)
}

/// Write the referrer manifest `doc` into the layout at `dir`, the blobs
/// it names (`blobs`) first, and list it as [`attach`] lists an artifact
/// (with the manifest's `artifactType`, its annotations): a referrer made
/// elsewhere than from files (a cosign signature, whose layers carry
/// their own annotations). Listing the same manifest again changes
/// nothing. Returns its descriptor.
pub fn attach_document(dir: &Path, doc: &Value, blobs: &[&[u8]]) -> Result<Descriptor> {
    // Refused before any blob is written: nothing half-attached.
    nested::check_own_blobs(dir)?;
    nested::check_shape(dir)?;
    let store = BlobDir::new(dir);
    store.remove_stale();
    for bytes in blobs {
        let mut w = store.writer()?;
        w.write_all(bytes).at(dir)?;
        w.complete()?;
    }
    let mut desc = store.write_json(doc, MediaType::MANIFEST)?;
    desc.artifact_type = artifact_type_of(doc).map(str::to_owned);
    if let Some(a) = doc["annotations"].as_object() {
        desc.annotations = a
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .filter(|(k, _)| k != ANNOTATION_REF_NAME)
            .collect();
    }
    add_to_index(dir, &desc)?;
    Ok(desc)
}

/// List `desc` as a referrer of the layout at `dir`, in the layout nested
/// at `referrers/` ([`crate::layout::nested`]: made if missing, its
/// `index.json` replaced atomically), unless it is listed there already.
/// Referrers that `index.json` itself lists (a layout an older nixoci
/// wrote) move there too, so that `index.json` keeps the image alone and
/// `crane push` takes the layout.
fn add_to_index(dir: &Path, desc: &Descriptor) -> Result<()> {
    let path = dir.join("index.json");
    let mut index: Value = read_json(&path)?;
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| Error::Invalid(format!("{}: no manifests list", path.display())))?
        .clone();
    // An untagged manifest of an index that index.json also lists (as
    // `oras cp -r --to-oci-layout` lists each platform manifest that has
    // referrers) is part of that image: it leaves index.json, as the
    // referrers do, so that the image is its one entry.
    let layout = Layout::open(dir)?;
    let layout_images: BTreeSet<Sha256Digest> =
        layout.images()?.into_iter().map(|d| d.digest).collect();
    let mut images = Vec::new();
    let mut moved = Vec::new();
    let mut dropped = Vec::new();
    for m in manifests {
        let d: Descriptor = serde_json::from_value(m.clone()).map_err(|e| {
            Error::Invalid(format!(
                "{}: a descriptor is not valid: {e}",
                path.display()
            ))
        })?;
        if layout.is_listed_referrer(&d) {
            // Listed as the referrers API lists it, with the manifest's
            // own artifactType: `oras cp -r --to-oci-layout` gives the
            // empty config's, or none.
            let bytes = layout.read_document(&d)?;
            moved.push(listing_entry(&d, &bytes));
        } else if layout_images.contains(&d.digest) {
            images.push(m);
        } else {
            dropped.push(m);
        }
    }
    let listed = match nested::read_index(dir)? {
        Some(bytes) => {
            let nested_path = nested::dir_of(dir).join("index.json");
            let doc: Value = parse_json(&nested_path, &bytes)?;
            Some(doc["manifests"].as_array().cloned().ok_or_else(|| {
                Error::Invalid(format!("{}: no manifests list", nested_path.display()))
            })?)
        }
        None => None,
    };
    let image_digests: Vec<&Value> = images
        .iter()
        .chain(&dropped)
        .map(|m| &m["digest"])
        .collect();
    let mut entries = images.clone();
    let referrers = listed
        .iter()
        .flatten()
        .filter(|m| {
            !image_digests.contains(&&m["digest"])
                && m["annotations"].get(ANNOTATION_REF_NAME).is_none()
        })
        .cloned()
        .chain(moved.iter().cloned())
        .chain([serde_json::to_value(desc).expect("a descriptor serialises")]);
    for r in referrers {
        if !entries.iter().any(|e| e["digest"] == r["digest"]) {
            entries.push(r);
        }
    }
    // What a killed run left, even when nothing is to be written.
    crate::layout::remove_stale_temporaries(dir, std::ffi::OsStr::new("index.json"));
    if moved.is_empty() && dropped.is_empty() && listed.as_ref() == Some(&entries) {
        // Listed already; but a layout of another shape is refused all the
        // same, as when something is to be written.
        return nested::check_shape(dir);
    }
    // The referrers are listed in their layout before they leave
    // `index.json`: an interrupted run leaves them listed twice (read
    // once), never lost.
    nested::write(dir, &entries)?;
    if !moved.is_empty() || !dropped.is_empty() {
        index["manifests"] = Value::Array(images);
        nested::replace_file(dir, "index.json", &canonical_json(&index))?;
    }
    Ok(())
}
