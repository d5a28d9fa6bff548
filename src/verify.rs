//! `nixoci verify`: check an image layout against its own claims and the
//! OCI image spec, and report every problem found (not just the first).
//!
//! Checked: `oci-layout` and its version; `index.json` and every document it
//! reaches against the OCI schemas (by strict parsing into the oci-spec
//! types); each blob's presence, size and sha256; each layer's media type
//! against its bytes, its tar structure, and its diff_id against the config;
//! descriptor platforms against the configs; the layout of its referrers
//! nested at `referrers/`, when there is one ([`nested`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layer::compress::Compression;
use crate::layout::BlobDir;
use crate::oci::descriptor::*;
use crate::oci::digest::{digest_reader, Sha256Digest};
use crate::oci::json::read_limited;
use crate::oci::MediaType;
use crate::untar::shape::Shape;
use crate::untar::Limits;

mod layer_tar;
mod nested;
use layer_tar::tar_diff_id;

pub use crate::oci::json::MAX_DOCUMENT;
/// Image indexes nested deeper than this are refused (as by every reader).
pub const MAX_DEPTH: usize = MAX_INDEX_DEPTH;

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Report {
    /// The layout checked.
    pub layout: PathBuf,
    /// Whether no problem was found.
    pub ok: bool,
    /// Every problem found, one message each.
    pub problems: Vec<String>,
    /// Manifests checked.
    pub manifests: usize,
    /// Blobs checked.
    pub blobs_checked: usize,
}

/// A descriptor as written: the digest is kept as a string, so that a
/// malformed one is reported as a problem of that descriptor instead of
/// failing the whole document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: MediaType,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexDoc {
    schema_version: u32,
    media_type: Option<String>,
    manifests: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    schema_version: u32,
    media_type: Option<String>,
    config: RawDescriptor,
    layers: Vec<RawDescriptor>,
    /// An artifact's subject (OCI 1.1): the manifest it is attached to.
    #[serde(default)]
    subject: Option<RawDescriptor>,
}

#[derive(Deserialize)]
struct ConfigDoc {
    architecture: String,
    os: String,
    variant: Option<String>,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

struct Verifier {
    blobs: BlobDir,
    problems: Vec<String>,
    /// Blobs already checked: digest -> whether they were sound.
    checked: BTreeMap<Sha256Digest, bool>,
    /// Manifests already checked (several tags may name one).
    manifests: BTreeSet<String>,
    /// Nested image indexes already checked.
    indexes: BTreeSet<String>,
    /// Descriptors listed by the indexes walked so far.
    nodes: usize,
    /// Each manifest checked, with its `subject`'s digest (a referrer's).
    subjects: BTreeMap<String, Option<String>>,
    limits: Limits,
}

/// A document's JSON, for the `validate_*` checks of [`crate::oci::validate`]. A
/// key given twice is a problem: readers disagree on which one counts, and
/// nixoci's own readers refuse such documents.
fn document(bytes: &[u8]) -> std::result::Result<serde_json::Value, String> {
    let doc = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON ({e})"))?;
    crate::oci::json::check_duplicate_keys(bytes)?;
    Ok(doc)
}

/// Verify the layout at `dir` with unpack's default limits.
pub fn verify(dir: &Path) -> Report {
    verify_with(dir, &Limits::default())
}

/// Verify the layout at `dir`; each layer is read within `limits` (entries,
/// file size, and uncompressed bytes for `max_total_size`), so that a
/// decompression bomb stops at the limit, named in the problem.
pub fn verify_with(dir: &Path, limits: &Limits) -> Report {
    let mut v = Verifier {
        limits: *limits,
        blobs: BlobDir::new(dir),
        problems: Vec::new(),
        checked: BTreeMap::new(),
        manifests: BTreeSet::new(),
        indexes: BTreeSet::new(),
        nodes: 0,
        subjects: BTreeMap::new(),
    };
    v.check_oci_layout(&dir.join("oci-layout"), "oci-layout");
    let root = match read_limited(&dir.join("index.json"), MAX_DOCUMENT) {
        Ok(bytes) => {
            v.check_index_bytes(&bytes, "index.json", 0);
            Some(bytes)
        }
        Err(e) => {
            v.problem(format!("index.json: cannot be read ({})", e.chain()));
            None
        }
    };
    v.check_nested(dir, root.as_deref());
    Report {
        layout: dir.to_owned(),
        ok: v.problems.is_empty(),
        problems: v.problems,
        manifests: v.manifests.len(),
        blobs_checked: v.checked.len(),
    }
}

impl Verifier {
    fn problem(&mut self, p: String) {
        // Messages may quote bytes from the layout: keep them printable.
        let clean: String = p
            .chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect();
        self.problems.push(clean);
    }

    /// The `oci-layout` file at `path`, called `what` in problems.
    fn check_oci_layout(&mut self, path: &Path, what: &str) {
        let bytes = match read_limited(path, 4096) {
            Ok(b) => b,
            Err(e) => {
                return self.problem(format!(
                    "{what}: cannot be read ({}); every image layout needs it",
                    e.chain()
                ))
            }
        };
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => match v.get("imageLayoutVersion").and_then(|x| x.as_str()) {
                Some("1.0.0") => {}
                Some(other) => self.problem(format!(
                    "{what}: imageLayoutVersion is {other:?}, expected \"1.0.0\""
                )),
                None => self.problem(format!("{what}: no imageLayoutVersion string")),
            },
            Err(e) => self.problem(format!("{what}: invalid JSON ({e})")),
        }
    }

    /// Check a blob against its descriptor; returns its path when it is
    /// present and sound.
    fn check_blob(&mut self, desc: &RawDescriptor, what: &str) -> Option<PathBuf> {
        let Some(digest) = Sha256Digest::parse(&desc.digest) else {
            self.problem(format!(
                "{what}: digest {:?} is not sha256:<64 lowercase hex>",
                desc.digest
            ));
            return None;
        };
        let path = self.blobs.path(&digest);
        // Opened first (never blocking, as on a FIFO swapped in after a
        // check by path), then checked through the open file.
        let opened = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(&path)
                .and_then(|f| f.metadata().map(|m| (f, m)))
        };
        let (file, meta) = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.problem(format!(
                    "{what}: blob {digest} is missing (blobs/sha256/{})",
                    digest.hex()
                ));
                return None;
            }
            Err(e) => {
                self.problem(format!("{what}: blob {digest} cannot be read ({e})"));
                return None;
            }
        };
        if !meta.is_file() {
            self.problem(format!("{what}: blob {digest} is not a regular file"));
            return None;
        }
        let mut sound = true;
        if meta.len() != desc.size {
            self.problem(format!(
                "{what}: size mismatch for {digest}: descriptor says {} bytes, blob has {}",
                desc.size,
                meta.len()
            ));
            sound = false;
        }
        let content_ok = match self.checked.get(&digest) {
            Some(ok) => *ok,
            None => {
                // Never read past the length just checked: the file may grow.
                let ok =
                    match digest_reader(BufReader::with_capacity(1 << 20, file).take(meta.len())) {
                        Ok((found, _)) if found == digest => true,
                        Ok((found, _)) => {
                            self.problem(format!(
                                "{what}: digest mismatch: blob {digest} has content {found}"
                            ));
                            false
                        }
                        Err(e) => {
                            self.problem(format!("{what}: blob {digest} cannot be read ({e})"));
                            false
                        }
                    };
                self.checked.insert(digest, ok);
                ok
            }
        };
        (sound && content_ok).then_some(path)
    }

    fn read_doc(&mut self, desc: &RawDescriptor, what: &str) -> Option<Vec<u8>> {
        if desc.size > MAX_DOCUMENT {
            self.problem(format!(
                "{what}: a {} byte document; nixoci reads documents of at most {MAX_DOCUMENT} bytes",
                desc.size
            ));
            return None;
        }
        let path = self.check_blob(desc, what)?;
        match read_limited(&path, desc.size) {
            Ok(b) => Some(b),
            Err(e) => {
                self.problem(format!("{what}: cannot be read ({})", e.chain()));
                None
            }
        }
    }

    fn check_index_bytes(&mut self, bytes: &[u8], what: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return self.problem(format!(
                "{what}: image indexes nested more than {MAX_DEPTH} deep"
            ));
        }
        // The schema check reports; the walk below goes on wherever the
        // document can still be read, so that every problem is found.
        if let Err(m) = document(bytes).and_then(|d| crate::oci::validate::validate_index(&d)) {
            self.problem(format!("{what}: not a valid OCI image index: {m}"));
        } else if let Err(e) = serde_json::from_slice::<oci_spec::image::ImageIndex>(bytes) {
            self.problem(format!("{what}: not a valid OCI image index: {e}"));
        }
        let doc: IndexDoc = match serde_json::from_slice(bytes) {
            Ok(d) => d,
            Err(_) => return,
        };
        if doc.manifests.is_empty() {
            self.problem(format!("{what}: lists no manifests"));
        }
        let mut names: BTreeMap<&str, &str> = BTreeMap::new();
        for desc in &doc.manifests {
            if let Some(name) = desc.annotations.get(ANNOTATION_REF_NAME) {
                match names.insert(name, &desc.digest) {
                    Some(other) if other != desc.digest => self.problem(format!(
                        "{what}: the name {name:?} is given to two different manifests ({} and {}); consumers cannot tell which is meant",
                        short(other),
                        short(&desc.digest)
                    )),
                    _ => {}
                }
            }
        }
        if doc.schema_version != 2 {
            self.problem(format!(
                "{what}: schemaVersion is {}, expected 2",
                doc.schema_version
            ));
        }
        if let Some(mt) = &doc.media_type {
            if !MediaType::from(mt.as_str()).is_index() {
                self.problem(format!(
                    "{what}: mediaType is {mt:?}, expected {:?}",
                    MediaType::INDEX
                ));
            }
        }
        for (i, desc) in doc.manifests.iter().enumerate() {
            self.nodes += 1;
            if self.nodes > MAX_INDEX_NODES {
                return self.problem(format!(
                    "{what}: the image indexes list more than {MAX_INDEX_NODES} descriptors; verify stops there"
                ));
            }
            let name = desc
                .annotations
                .get(ANNOTATION_REF_NAME)
                .map(|t| format!("{what} manifests[{i}] ({t})"))
                .unwrap_or_else(|| format!("{what} manifests[{i}]"));
            match &desc.media_type {
                m if m.is_manifest() => self.check_manifest(desc, &name),
                m if m.is_index() => {
                    if !self.indexes.insert(desc.digest.clone()) {
                        continue;
                    }
                    if let Some(b) = self.read_doc(desc, &name) {
                        self.check_index_bytes(&b, &name, depth + 1);
                    }
                }
                other => self.problem(format!("{name}: unknown media type {other:?}")),
            }
        }
    }

    fn check_manifest(&mut self, desc: &RawDescriptor, what: &str) {
        if !self.manifests.insert(desc.digest.clone()) {
            return;
        }
        let Some(bytes) = self.read_doc(desc, what) else {
            return;
        };
        let what = format!("{what} manifest {}", short(&desc.digest));
        if let Err(m) = document(&bytes).and_then(|d| crate::oci::validate::validate_manifest(&d)) {
            return self.problem(format!("{what}: not a valid OCI image manifest: {m}"));
        }
        if let Err(e) = serde_json::from_slice::<oci_spec::image::ImageManifest>(&bytes) {
            return self.problem(format!("{what}: not a valid OCI image manifest: {e}"));
        }
        let doc: ManifestDoc = match serde_json::from_slice(&bytes) {
            Ok(d) => d,
            Err(e) => return self.problem(format!("{what}: not a valid OCI image manifest: {e}")),
        };
        if doc.schema_version != 2 {
            self.problem(format!(
                "{what}: schemaVersion is {}, expected 2",
                doc.schema_version
            ));
        }
        if let Some(mt) = &doc.media_type {
            if desc.media_type != *mt.as_str() {
                self.problem(format!(
                    "{what}: mediaType {mt:?} differs from its descriptor's {:?}",
                    desc.media_type
                ));
            }
        }
        self.subjects.insert(
            desc.digest.clone(),
            doc.subject.as_ref().map(|s| s.digest.clone()),
        );
        if let Some(subject) = &doc.subject {
            // A referrer: its subject must be in the layout.
            if self
                .check_blob(subject, &format!("{what} subject"))
                .is_some()
                && !subject.media_type.is_manifest()
                && !subject.media_type.is_index()
            {
                self.problem(format!(
                    "{what}: its subject {} is not a manifest or index ({:?})",
                    short(&subject.digest),
                    subject.media_type
                ));
            }
        }
        if !doc.config.media_type.is_config() {
            // An artifact (OCI 1.1: any other config, often the empty
            // descriptor): its config and files are blobs, checked by
            // digest and size; nothing of an image applies.
            self.check_blob(&doc.config, &format!("{what} config"));
            for (i, layer) in doc.layers.iter().enumerate() {
                self.check_blob(layer, &format!("{what} file {i}"));
            }
            return;
        }
        let config_what = format!("{what} config");
        let config: Option<ConfigDoc> = self.read_doc(&doc.config, &config_what).and_then(|b| {
            if let Err(m) = document(&b).and_then(|d| crate::oci::validate::validate_config(&d)) {
                self.problem(format!("{config_what}: not a valid OCI image config: {m}"));
                return None;
            }
            if let Err(e) = serde_json::from_slice::<oci_spec::image::ImageConfiguration>(&b) {
                self.problem(format!("{config_what}: not a valid OCI image config: {e}"));
                return None;
            }
            match serde_json::from_slice(&b) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.problem(format!("{config_what}: not a valid OCI image config: {e}"));
                    None
                }
            }
        });
        if let Some(c) = &config {
            if c.rootfs.kind != "layers" {
                self.problem(format!(
                    "{config_what}: rootfs.type is {:?}, expected \"layers\"",
                    c.rootfs.kind
                ));
            }
            if c.rootfs.diff_ids.len() != doc.layers.len() {
                self.problem(format!(
                    "{config_what}: {} diff_ids for {} layers",
                    c.rootfs.diff_ids.len(),
                    doc.layers.len()
                ));
            }
            if let Some(p) = &desc.platform {
                if p.architecture != c.architecture
                    || p.os != c.os
                    || (p.variant.is_some() && p.variant != c.variant)
                {
                    self.problem(format!(
                        "{what}: descriptor platform {p} differs from the config's {}/{}",
                        c.os, c.architecture
                    ));
                }
            }
        }
        // The tree the layers make, as `unpack` makes it: a layer it would
        // refuse on top of the layers below is a problem. Once a layer
        // cannot be read, the tree is not known above it.
        let mut shape = Some(Shape::default());
        for (i, layer) in doc.layers.iter().enumerate() {
            let expected = config
                .as_ref()
                .and_then(|c| c.rootfs.diff_ids.get(i).cloned());
            let before = self.problems.len();
            self.check_layer(
                layer,
                expected.as_deref(),
                &format!("{what} layer {i}"),
                shape.as_mut(),
            );
            if self.problems.len() != before {
                shape = None;
            }
        }
    }

    fn check_layer(
        &mut self,
        desc: &RawDescriptor,
        diff_id: Option<&str>,
        what: &str,
        shape: Option<&mut Shape<()>>,
    ) {
        let Some(compression) = Compression::from_layer_media_type(&desc.media_type) else {
            self.check_blob(desc, what);
            return self.problem(format!(
                "{what}: unknown layer media type {:?}",
                desc.media_type
            ));
        };
        let Some(path) = self.check_blob(desc, what) else {
            return;
        };
        let mut magic = [0u8; 4];
        let n = File::open(&path)
            .and_then(|mut f| crate::layer::tree::read_full(&mut f, &mut magic))
            .unwrap_or(0);
        let sniffed = match &magic[..n] {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd] => Some(Compression::Zstd),
            _ => None,
        };
        if let Some(s) = sniffed {
            if s != compression {
                return self.problem(format!(
                    "{what}: content is {s}-compressed but the media type {:?} says {compression}",
                    desc.media_type
                ));
            }
        }
        match tar_diff_id(&path, compression, desc.size, &self.limits, shape) {
            Ok(found) => {
                if let Some(expected) = diff_id {
                    if found.to_string() != expected {
                        self.problem(format!(
                            "{what}: diff_id mismatch: config says {expected}, uncompressed content is {found}"
                        ));
                    }
                }
            }
            Err(e) => self.problem(format!("{what} ({}): {e}", short(&desc.digest))),
        }
    }
}

/// `sha256:0123456789ab` for messages.
pub fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
