//! `nixoci diff`: what changed from one image to another, and what a push
//! of the second to a repository holding the first would send.
//!
//! Both images are read through [`Layout`] (a registry image is pulled into
//! a temporary layout first, by the command line). Layers are compared by
//! digest: each layer of B is `same` when A has a layer with that digest,
//! else `added`; each layer of A that B lacks is `removed`. The i-th added
//! layer is paired with the i-th removed one (in the order of their
//! images) as a *changed* layer, and the tar entries of the two are read
//! through `untar::EntryMeta`, within [`Limits`] (per layer, as `verify` reads),
//! never extracted, to name the files that differ and the Nix store paths
//! they lie under.
//!
//! The push figure follows what `nixoci push` does (`remote::push`): a tag
//! that already names B's digest is left alone (nothing is sent); a
//! repository holding B's manifest or index by digest is sent that
//! document alone (under the tag); otherwise every blob of B's graph that
//! A's graph lacks is sent, then every manifest of B's graph (push writes
//! each child manifest of an index again) and B's top document. Then B's
//! referrers (of its manifest or index, as `push` sends them) that A does
//! not list: their blobs that neither side has, their manifests, and per
//! subject the fallback index `push` writes (A's referrers of it and the
//! new ones), unless the registry keeps referrers itself.

mod entries;

use entries::read_entries;
pub use entries::FileMeta;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::layer::compress::Compression;
use crate::layout::{Graph, Image, Layout};
use crate::oci::descriptor::{Descriptor, Platform};
use crate::oci::digest::Sha256Digest;
use crate::oci::MediaType;
use crate::untar::Limits;

/// How many differing files a report lists per changed layer with
/// `--json`, unless `--files` says otherwise.
pub const JSON_FILES: usize = 10_000;

/// What to compare, and how much to read.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// For an image index (on either side): which platform (default: linux
    /// and this machine's architecture).
    pub platform: Option<Platform>,
    /// Bounds on reading each layer of a changed pair.
    pub limits: Limits,
    /// How many differing files to list per changed layer (all are
    /// counted).
    pub max_files: usize,
    /// The registry holding A keeps referrers itself (the referrers API):
    /// a push lists B's referrers without a fallback index. Otherwise (a
    /// registry without it, or A a layout) the fallback index is counted.
    pub referrers_api: bool,
}

/// One side of the comparison.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// The layout (or, set by the caller, the reference) it was read from.
    pub source: String,
    /// What the tag names: the manifest, or the image index.
    pub digest: Sha256Digest,
    pub media_type: MediaType,
    /// The image compared (for an index, the platform's).
    pub platform: Option<Platform>,
    pub manifest: Sha256Digest,
    pub manifest_size: u64,
    pub config: Sha256Digest,
    pub config_size: u64,
}

/// What happened to a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A has a layer with this digest.
    Same,
    /// B has it, A does not.
    Added,
    /// A has it, B does not.
    Removed,
}

/// One layer of B, or a layer of A that B lacks.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerEntry {
    pub status: Status,
    /// Its position in its image (B's, or A's for a removed layer).
    pub index: usize,
    pub digest: Sha256Digest,
    pub size: u64,
    /// As the image's config gives it.
    pub diff_id: Option<Sha256Digest>,
    pub media_type: MediaType,
}

/// A removed layer of A and the added layer of B paired with it, and the
/// files that differ between them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    /// A's layer: position and digest.
    pub a_index: usize,
    pub a_digest: Sha256Digest,
    /// B's layer: position and digest.
    pub b_index: usize,
    pub b_digest: Sha256Digest,
    /// The two uncompressed tars are the same (the compression differs).
    pub same_content: bool,
    /// How many paths differ.
    pub files_total: usize,
    /// The first of them, by path (at most `max_files`).
    pub files: Vec<FileChange>,
    /// The Nix store paths (`/nix/store/HASH-NAME`) under which any of the
    /// `files_total` paths lies, sorted.
    pub store_paths: Vec<String>,
    /// Why no files were compared, when they were not (a layer that is
    /// not a tar).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How a path differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// A path that differs between the two layers of a pair.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    /// Absolute, as it lands in the root filesystem (`/etc/app.json`).
    pub path: String,
    pub change: Change,
    /// For `changed`: what differs, of `type`, `content`, `size`, `mode`,
    /// `owner`, `link`, `mtime`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
    /// The entry in A's layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<FileMeta>,
    /// The entry in B's layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<FileMeta>,
}

/// A blob or document a push would send.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    pub digest: Sha256Digest,
    pub size: u64,
    pub media_type: MediaType,
}

/// What `nixoci push B` would send to a repository holding A, under a tag
/// that names A.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Push {
    /// The sizes of `blobs` and `manifests`.
    pub bytes: u64,
    /// Configs and layers of B that A lacks, then the blobs of B's
    /// referrers that A lacks.
    pub blobs: Vec<Sent>,
    /// Manifests and indexes written, B's top one last; then B's
    /// referrers that A does not list, and for each subject of theirs the
    /// fallback index written (unless the registry keeps referrers).
    pub manifests: Vec<Sent>,
}

/// What `diff` found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub a: Side,
    pub b: Side,
    /// A and B have the same digest (the tags name the same thing).
    pub identical: bool,
    /// Every layer of B in order, then every layer of A that B lacks.
    pub layers: Vec<LayerEntry>,
    /// The pairs of removed and added layers, compared file by file.
    pub changed: Vec<Changed>,
    pub push: Push,
}

/// One side, opened: the layout, what the tag names, the image compared
/// and the graph under the tag.
struct Opened {
    layout: Layout,
    root: Descriptor,
    image: Image,
    diff_ids: Vec<Option<Sha256Digest>>,
    graph: Graph,
}

impl Opened {
    fn open(layout: &Layout, tag: Option<&str>, opts: &DiffOptions) -> Result<Opened> {
        let within = |e: Error| e.within(layout.dir().display().to_string());
        let root = layout.select(tag)?;
        let manifest = layout
            .choose(&root, opts.platform.as_ref())
            .map_err(within)?;
        let image = layout.image(&manifest).map_err(within)?;
        let diff_ids = image.diff_ids()?;
        let graph = layout.graph(&root).map_err(within)?;
        // Every blob a push would read is a file of its size (as push
        // checks); contents are checked where they are read.
        for b in &graph.blobs {
            layout.blob_file(b)?;
        }
        Ok(Opened {
            layout: layout.clone(),
            root,
            image,
            diff_ids,
            graph,
        })
    }

    fn side(&self) -> Result<Side> {
        // The index's word for the platform, else the config's.
        let platform = match &self.image.manifest.platform {
            Some(p) => Some(p.clone()),
            None => {
                let config = self.image.config_value()?;
                let field = |k: &str| config.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                match (field("os"), field("architecture")) {
                    (Some(os), Some(architecture)) => Some(Platform {
                        architecture,
                        os,
                        variant: field("variant"),
                        os_version: None,
                        os_features: None,
                    }),
                    _ => None,
                }
            }
        };
        Ok(Side {
            source: self.layout.dir().display().to_string(),
            digest: self.root.digest.clone(),
            media_type: self.root.media_type.clone(),
            platform,
            manifest: self.image.manifest.digest.clone(),
            manifest_size: self.image.manifest.size,
            config: self.image.config.digest.clone(),
            config_size: self.image.config.size,
        })
    }
}

/// Compare the image `tag_a` of layout `a` (or its only image) with the
/// image `tag_b` of `b`.
pub fn diff(
    a: &Layout,
    tag_a: Option<&str>,
    b: &Layout,
    tag_b: Option<&str>,
    opts: &DiffOptions,
) -> Result<Report> {
    let a = Opened::open(a, tag_a, opts)?;
    let b = Opened::open(b, tag_b, opts)?;

    let in_a: BTreeSet<&Sha256Digest> = a.image.layers.iter().map(|l| &l.digest).collect();
    let in_b: BTreeSet<&Sha256Digest> = b.image.layers.iter().map(|l| &l.digest).collect();
    let entry = |side: &Opened, i: usize, status| {
        let l = &side.image.layers[i];
        LayerEntry {
            status,
            index: i,
            digest: l.digest.clone(),
            size: l.size,
            diff_id: side.diff_ids.get(i).cloned().flatten(),
            media_type: l.media_type.clone(),
        }
    };
    let mut layers = Vec::new();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for (i, l) in b.image.layers.iter().enumerate() {
        if in_a.contains(&l.digest) {
            layers.push(entry(&b, i, Status::Same));
        } else {
            layers.push(entry(&b, i, Status::Added));
            added.push(i);
        }
    }
    for (i, l) in a.image.layers.iter().enumerate() {
        if !in_b.contains(&l.digest) {
            layers.push(entry(&a, i, Status::Removed));
            removed.push(i);
        }
    }
    let changed = removed
        .iter()
        .zip(&added)
        .map(|(&ia, &ib)| compare(&a, ia, &b, ib, opts))
        .collect::<Result<Vec<_>>>()?;
    Ok(Report {
        a: a.side()?,
        b: b.side()?,
        identical: a.root.digest == b.root.digest,
        layers,
        changed,
        push: push_over(&a, &b, opts.referrers_api)?,
    })
}

/// What a push of B sends to a repository holding A (see the module
/// documentation).
fn push_over(a: &Opened, b: &Opened, referrers_api: bool) -> Result<Push> {
    let sent = |d: &Descriptor| Sent {
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
    };
    let (blobs, manifests) = if a.root.digest == b.root.digest {
        (Vec::new(), Vec::new())
    } else if a
        .graph
        .documents
        .iter()
        .any(|d| d.descriptor.digest == b.root.digest)
    {
        (Vec::new(), vec![sent(&b.root)])
    } else {
        let have: BTreeSet<&Sha256Digest> = a.graph.blobs.iter().map(|d| &d.digest).collect();
        let mut blobs: Vec<Sent> = b
            .graph
            .blobs
            .iter()
            .filter(|d| !have.contains(&d.digest))
            .map(sent)
            .collect();
        blobs.sort_by(|x, y| x.digest.cmp(&y.digest));
        // The graph lists children before the indexes listing them: the
        // top document comes last, as push writes it.
        let manifests = b
            .graph
            .documents
            .iter()
            .map(|d| sent(&d.descriptor))
            .collect();
        (blobs, manifests)
    };
    let (mut blobs, mut manifests) = (blobs, manifests);
    referrers_over(a, b, referrers_api, &mut blobs, &mut manifests)?;
    Ok(Push {
        bytes: blobs.iter().chain(&manifests).map(|s| s.size).sum(),
        blobs,
        manifests,
    })
}

/// What a push of B's referrers sends to a repository holding A and A's
/// referrers, as `push` does it: a referrer A lists already is left
/// alone; each other one sends the blobs of its that neither image nor an
/// earlier referrer has, then its manifest; then, per subject, the
/// fallback index listing A's referrers of it and the new ones, written
/// once (none when the registry keeps referrers).
fn referrers_over(
    a: &Opened,
    b: &Opened,
    referrers_api: bool,
    blobs: &mut Vec<Sent>,
    manifests: &mut Vec<Sent>,
) -> Result<()> {
    let subjects = |o: &Opened| -> BTreeSet<Sha256Digest> {
        o.graph
            .documents
            .iter()
            .map(|d| d.descriptor.digest.clone())
            .collect()
    };
    let in_a = crate::referrers::of_subjects(&a.layout, &subjects(a))?;
    let in_b = crate::referrers::of_subjects(&b.layout, &subjects(b))?;
    let listed: BTreeSet<&Sha256Digest> = in_a.iter().map(|(d, _)| &d.digest).collect();
    let mut have: BTreeSet<Sha256Digest> = a
        .graph
        .blobs
        .iter()
        .chain(b.graph.blobs.iter())
        .map(|d| d.digest.clone())
        .collect();
    for (r, _) in &in_a {
        have.extend(a.layout.graph(r)?.blobs.into_iter().map(|d| d.digest));
    }
    let mut new: BTreeMap<Sha256Digest, Vec<serde_json::Value>> = BTreeMap::new();
    for (r, subject) in &in_b {
        if listed.contains(&r.digest) {
            continue;
        }
        let graph = b.layout.graph(r)?;
        for d in &graph.blobs {
            if have.insert(d.digest.clone()) {
                blobs.push(Sent {
                    digest: d.digest.clone(),
                    size: d.size,
                    media_type: d.media_type.clone(),
                });
            }
        }
        manifests.push(Sent {
            digest: r.digest.clone(),
            size: r.size,
            media_type: r.media_type.clone(),
        });
        let bytes = b.layout.read_document(r)?;
        new.entry(subject.clone())
            .or_default()
            .push(crate::referrers::listing_entry(r, &bytes));
    }
    if referrers_api {
        return Ok(());
    }
    for (subject, entries) in new {
        let mut all = Vec::new();
        for (r, _) in in_a.iter().filter(|(_, s)| *s == subject) {
            let bytes = a.layout.read_document(r)?;
            all.push(crate::referrers::listing_entry(r, &bytes));
        }
        all.extend(entries);
        let index = crate::oci::json::canonical_json(&crate::referrers::fallback_document(all));
        manifests.push(Sent {
            digest: Sha256Digest::of(&index),
            size: index.len() as u64,
            media_type: MediaType::INDEX,
        });
    }
    Ok(())
}

/// Compare A's layer `ia` with B's layer `ib`, file by file.
fn compare(a: &Opened, ia: usize, b: &Opened, ib: usize, opts: &DiffOptions) -> Result<Changed> {
    let (la, lb) = (&a.image.layers[ia], &b.image.layers[ib]);
    let (da, db) = (
        a.diff_ids.get(ia).cloned().flatten(),
        b.diff_ids.get(ib).cloned().flatten(),
    );
    let mut changed = Changed {
        a_index: ia,
        a_digest: la.digest.clone(),
        b_index: ib,
        b_digest: lb.digest.clone(),
        same_content: da.is_some() && da == db,
        files_total: 0,
        files: Vec::new(),
        store_paths: Vec::new(),
        note: None,
    };
    let not_tar = |d: &Descriptor| Compression::from_layer_media_type(&d.media_type).is_none();
    if not_tar(la) || not_tar(lb) {
        changed.note = Some("not a tar layer (an artifact): its files are not compared".to_owned());
        return Ok(changed);
    }
    let files_a = read_entries(&a.layout, ia, la, da.as_ref(), &opts.limits)?;
    let files_b = read_entries(&b.layout, ib, lb, db.as_ref(), &opts.limits)?;
    let mut store_paths = BTreeSet::new();
    let paths: BTreeSet<&Vec<u8>> = files_a.keys().chain(files_b.keys()).collect();
    for path in paths {
        let (fa, fb) = (files_a.get(path), files_b.get(path));
        let (change, fields) = match (fa, fb) {
            (Some(x), Some(y)) => {
                let fields = differing(x, y);
                if fields.is_empty() {
                    continue;
                }
                (Change::Changed, fields)
            }
            (None, Some(_)) => (Change::Added, Vec::new()),
            (Some(_), None) => (Change::Removed, Vec::new()),
            (None, None) => continue,
        };
        changed.files_total += 1;
        if let Some(p) = store_path(path) {
            store_paths.insert(p);
        }
        if changed.files.len() < opts.max_files {
            changed.files.push(FileChange {
                path: format!("/{}", String::from_utf8_lossy(path)),
                change,
                fields,
                a: fa.cloned(),
                b: fb.cloned(),
            });
        }
    }
    changed.store_paths = store_paths.into_iter().collect();
    Ok(changed)
}

/// The fields in which two entries of one path differ.
fn differing(x: &FileMeta, y: &FileMeta) -> Vec<&'static str> {
    let mut out = Vec::new();
    if x.kind != y.kind {
        out.push("type");
    }
    if x.digest != y.digest {
        out.push("content");
    }
    if x.size != y.size {
        out.push("size");
    }
    if x.mode != y.mode {
        out.push("mode");
    }
    if (x.uid, x.gid) != (y.uid, y.gid) {
        out.push("owner");
    }
    if x.link != y.link {
        out.push("link");
    }
    if x.mtime != y.mtime {
        out.push("mtime");
    }
    out
}

/// `/nix/store/HASH-NAME` when `path` (relative, normalised) lies under a
/// store path.
fn store_path(path: &[u8]) -> Option<String> {
    let rest = path.strip_prefix(b"nix/store/")?;
    let name = rest.split(|b| *b == b'/').next()?;
    // A Nix store path name: 32 characters of hash, `-`, a name.
    (name.len() > 33 && name[32] == b'-')
        .then(|| format!("/nix/store/{}", String::from_utf8_lossy(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths_are_the_first_component_under_the_store() {
        let p = b"nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12/bin/hello";
        assert_eq!(
            store_path(p).as_deref(),
            Some("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12")
        );
        assert_eq!(store_path(b"nix/store/short-name/x"), None);
        assert_eq!(store_path(b"nix/store"), None);
        assert_eq!(store_path(b"etc/nix/store/x"), None);
    }
}
