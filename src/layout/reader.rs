//! The reader: one way to open an image layout, resolve a tag and a
//! platform to an image, and walk the graph of documents under a
//! descriptor. `inspect`, `archive`, `unpack` and `push` all read layouts
//! through it, so they agree on what a layout means and on every limit:
//! documents of at most [`MAX_DOCUMENT`] bytes, each checked against its
//! digest; indexes nested at most [`MAX_INDEX_DEPTH`] deep; at most
//! [`MAX_INDEX_NODES`] documents under one descriptor, each read once.
//! (`verify` reads on its own, leniently, because it reports every problem
//! instead of stopping at the first.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Content, Error, IoContext, Result};
use crate::layout::store::{BlobDir, BlobReader};
use crate::layout::tags::{has_platform_tags, platform_tag, tags_of, Named};
use crate::oci::descriptor::{
    choose_platform, Descriptor, Platform, Refs, MAX_INDEX_DEPTH, MAX_INDEX_NODES,
};
use crate::oci::digest::Sha256Digest;
use crate::oci::json::{parse_json, read_json, read_limited, MAX_DOCUMENT};
use crate::oci::media_type::MediaType;

/// An OCI image layout, opened for reading.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
    blobs: BlobDir,
}

/// One image of a layout: a manifest, its config and its layers.
#[derive(Debug)]
pub struct Image {
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// Its config's descriptor.
    pub config: Descriptor,
    /// The config document as stored.
    pub config_bytes: Vec<u8>,
    /// Where it is stored (for messages).
    pub config_path: PathBuf,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
}

impl Image {
    /// The config document, parsed as strictly as every document (a key
    /// given twice is refused: readers disagree on which one counts).
    pub fn config_value(&self) -> Result<serde_json::Value> {
        parse_json(&self.config_path, &self.config_bytes)
    }

    /// Each layer's diff_id as the config gives it (`None` where the
    /// config lists no string for that layer; an error where it lists
    /// something that is not a sha256 digest).
    pub fn diff_ids(&self) -> Result<Vec<Option<Sha256Digest>>> {
        let config = self.config_value()?;
        (0..self.layers.len())
            .map(|i| {
                config
                    .pointer(&format!("/rootfs/diff_ids/{i}"))
                    .and_then(|v| v.as_str())
                    .map(|d| {
                        d.parse().map_err(|why| {
                            Error::Invalid(format!(
                                "config {}: rootfs.diff_ids[{i}]: {why}",
                                self.config.digest
                            ))
                        })
                    })
                    .transpose()
            })
            .collect()
    }
}

/// A manifest or an index of the graph, with its bytes.
#[derive(Debug)]
pub struct Document {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
    pub refs: Refs,
}

/// Everything under a descriptor: its documents, children before the
/// indexes listing them (each once, in the order first met), and the
/// blobs they reference (configs and layers, each once, in the order first
/// met).
#[derive(Debug, Default)]
pub struct Graph {
    pub documents: Vec<Document>,
    pub blobs: Vec<Descriptor>,
}

impl Graph {
    /// Every descriptor of the graph, documents and blobs, each once, in
    /// digest order.
    pub fn all_by_digest(&self) -> Vec<&Descriptor> {
        let mut all: Vec<&Descriptor> = self
            .documents
            .iter()
            .map(|d| &d.descriptor)
            .chain(self.blobs.iter())
            .collect();
        all.sort_by(|a, b| a.digest.cmp(&b.digest));
        all.dedup_by(|a, b| a.digest == b.digest);
        all
    }

    /// The image manifests of the graph (not the indexes), in order.
    pub fn manifests(&self) -> impl Iterator<Item = &Document> {
        self.documents
            .iter()
            .filter(|d| !d.descriptor.media_type.is_index())
    }
}

/// Whether an `index.json` descriptor is a referrer: an artifact attached
/// to an image of the layout (an SBOM, a signature), which the layout
/// records with its `artifactType` and no `ref.name` (the manifest's
/// `subject` names the image). Such entries name no image: a layout's only
/// image is the only other entry. An `artifactType` that is an image
/// config's media type names an image: go-containerregistry (`crane pull
/// --format oci`) records every image so, untagged. nixoci writes
/// referrers in the layout nested at `referrers/`
/// ([`crate::layout::nested`]), not in `index.json`; layouts written by an
/// older nixoci or by `oras cp --to-oci-layout` list them in `index.json`,
/// and are read as before.
pub fn is_referrer(d: &Descriptor) -> bool {
    d.artifact_type
        .as_deref()
        .is_some_and(|t| t != MediaType::CONFIG.as_str() && t != MediaType::DOCKER_CONFIG.as_str())
        && !d
            .annotations
            .contains_key(crate::oci::descriptor::ANNOTATION_REF_NAME)
}

impl Layout {
    /// Open the layout at `dir`: it must have an `oci-layout` file.
    pub fn open(dir: &Path) -> Result<Layout> {
        if !dir.join("oci-layout").is_file() {
            return Err(Error::NotALayout(dir.to_owned()));
        }
        Ok(Layout {
            dir: dir.to_owned(),
            blobs: BlobDir::new(dir),
        })
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its blob store.
    pub fn blobs(&self) -> &BlobDir {
        &self.blobs
    }

    /// The descriptors of `index.json`.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        let index: Refs = read_json(&self.dir.join("index.json"))?;
        Ok(index.manifests)
    }

    /// Every name the layout gives, in order: each `index.json`
    /// descriptor's tags, then, for an index with platform tags, each
    /// platform's names (see [`crate::layout::tags`]).
    pub fn names(&self) -> Result<Vec<Named>> {
        self.names_of_entries(&self.entries()?)
    }

    /// [`Layout::names`], for `index.json` descriptors already read.
    pub fn names_of_entries(&self, entries: &[Descriptor]) -> Result<Vec<Named>> {
        let mut out: Vec<Named> = Vec::new();
        for d in entries {
            let tags = tags_of(d);
            for t in &tags {
                out.push(Named {
                    name: t.clone(),
                    descriptor: d.clone(),
                });
            }
            if has_platform_tags(d) {
                let index = self.refs(d)?;
                for t in &tags {
                    for m in &index.manifests {
                        if let Some(p) = &m.platform {
                            out.push(Named {
                                name: platform_tag(t, p),
                                descriptor: m.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The names the layout gives the image `digest`, in order.
    pub fn names_of(&self, digest: &Sha256Digest) -> Result<Vec<String>> {
        Ok(self
            .names()?
            .into_iter()
            .filter(|n| n.descriptor.digest == *digest)
            .map(|n| n.name)
            .collect())
    }

    /// Whether the `index.json` entry `d` is a referrer: [`is_referrer`],
    /// or an untagged manifest with a `subject` (`oras cp -r REF
    /// --to-oci-layout` lists a referrer that has referrers of its own
    /// without its `artifactType`). A manifest that cannot be read is
    /// not: reading it as an image says why.
    pub fn is_listed_referrer(&self, d: &Descriptor) -> bool {
        is_referrer(d)
            || (tags_of(d).is_empty()
                && d.media_type.is_manifest()
                && self
                    .read_document(d)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .is_some_and(|doc| doc.get("subject").is_some_and(|s| s.is_object())))
    }

    /// The `index.json` descriptors of images: not referrers
    /// ([`Layout::is_listed_referrer`]), and not an untagged manifest that
    /// another entry, an index, lists (part of that image: `oras cp -r REF
    /// --to-oci-layout` lists each platform manifest that has referrers
    /// so, beside the index).
    pub fn images(&self) -> Result<Vec<Descriptor>> {
        let images: Vec<Descriptor> = self
            .entries()?
            .into_iter()
            .filter(|d| !self.is_listed_referrer(d))
            .collect();
        let mut children = BTreeSet::new();
        for d in images.iter().filter(|d| d.media_type.is_index()) {
            children.extend(self.refs(d)?.manifests.into_iter().map(|m| m.digest));
        }
        Ok(images
            .into_iter()
            .filter(|d| !(children.contains(&d.digest) && tags_of(d).is_empty()))
            .collect())
    }

    /// The layout's referrers, each once (by digest): those of the layout
    /// nested at `referrers/` ([`crate::layout::nested`]: its entries
    /// after the images, as nixoci writes them), and those `index.json`
    /// itself lists ([`Layout::is_listed_referrer`]: as an older nixoci and
    /// `oras cp --to-oci-layout` write them), these first.
    pub fn referrers(&self) -> Result<Vec<Descriptor>> {
        let (mut out, others): (Vec<Descriptor>, Vec<Descriptor>) = self
            .entries()?
            .into_iter()
            .partition(|d| self.is_listed_referrer(d));
        let images: BTreeSet<Sha256Digest> = others.into_iter().map(|d| d.digest).collect();
        let nested = crate::layout::nested::read_entries(&self.dir)?.unwrap_or_default();
        for d in nested {
            let named = d
                .annotations
                .contains_key(crate::oci::descriptor::ANNOTATION_REF_NAME);
            if !named && !images.contains(&d.digest) && !out.iter().any(|o| o.digest == d.digest) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The descriptor `tag` names (any name the layout records); without a
    /// tag, the layout's only image (referrers do not count).
    pub fn select(&self, tag: Option<&str>) -> Result<Descriptor> {
        let layout = &self.dir;
        let Some(t) = tag else {
            let entries = self.images()?;
            let digests: BTreeSet<&Sha256Digest> = entries.iter().map(|d| &d.digest).collect();
            return match (digests.len(), entries.first()) {
                (1, Some(d)) => Ok(d.clone()),
                (0, _) => Err(Error::NoImage(layout.clone())),
                _ => Err(Error::SeveralImages {
                    layout: layout.clone(),
                    tags: entries.iter().flat_map(tags_of).collect(),
                }),
            };
        };
        let all = self.names()?;
        all.iter()
            .find(|n| n.name == t)
            .map(|n| n.descriptor.clone())
            .ok_or_else(|| Error::NoSuchTag {
                layout: layout.clone(),
                tag: t.to_owned(),
                tags: all.iter().map(|n| n.name.clone()).collect(),
            })
    }

    /// The document `d` describes: at most [`MAX_DOCUMENT`] bytes, checked
    /// against its digest and size.
    pub fn read_document(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let path = self.blobs.path(&d.digest);
        if d.size > MAX_DOCUMENT {
            return Err(Error::Invalid(format!(
                "{}: document {} declares {} bytes, more than the {MAX_DOCUMENT} a document may have",
                self.dir.display(),
                d.digest,
                d.size
            )));
        }
        // Read up to the bound, not just the declared size, so a longer blob
        // is reported as the mismatch it is.
        let bytes = read_limited(&path, MAX_DOCUMENT)?;
        let found = Sha256Digest::of(&bytes);
        if found != d.digest || bytes.len() as u64 != d.size {
            return Err(Error::DigestMismatch {
                context: path.display().to_string(),
                expected: Content::Blob(d.digest.clone(), d.size),
                found: Content::Blob(found, bytes.len() as u64),
            });
        }
        Ok(bytes)
    }

    /// The descriptors the manifest or index `d` lists.
    pub fn refs(&self, d: &Descriptor) -> Result<Refs> {
        let bytes = self.read_document(d)?;
        parse_json(&self.blobs.path(&d.digest), &bytes)
    }

    /// A blob of the layout, to read (its digest and size checked by
    /// [`BlobReader::finish`]).
    pub fn open_blob(&self, d: &Descriptor) -> Result<BlobReader> {
        self.blobs.open(d)
    }

    /// The manifest for `platform` under `root`: `root` itself when it is a
    /// manifest, else the search of [`choose_platform`] through the index
    /// (default platform: linux on this machine's architecture).
    pub fn choose(&self, root: &Descriptor, platform: Option<&Platform>) -> Result<Descriptor> {
        if !root.media_type.is_index() {
            return Ok(root.clone());
        }
        let open = |d: &Descriptor| Ok(self.refs(d)?.manifests);
        choose_platform(&open(root)?, platform, open)
    }

    /// The image the manifest `manifest` describes.
    pub fn image(&self, manifest: &Descriptor) -> Result<Image> {
        let refs = self.refs(manifest)?;
        let config = refs.config.ok_or_else(|| Error::NoConfig {
            manifest: manifest.digest.clone(),
        })?;
        let config_bytes = self.read_document(&config)?;
        Ok(Image {
            manifest: manifest.clone(),
            config_path: self.blobs.path(&config.digest),
            config,
            config_bytes,
            layers: refs.layers,
        })
    }

    /// The image `tag` (or the only one) names, for `platform` when it is
    /// an index.
    pub fn resolve(&self, tag: Option<&str>, platform: Option<&Platform>) -> Result<Image> {
        let root = self.select(tag)?;
        self.image(&self.choose(&root, platform)?)
    }

    /// The graph under `root` (see [`Graph`]), each document read and
    /// checked once.
    pub fn graph(&self, root: &Descriptor) -> Result<Graph> {
        let mut graph = Graph::default();
        let mut seen_docs = BTreeSet::new();
        let mut seen_blobs = BTreeSet::new();
        self.visit(root, 0, &mut graph, &mut seen_docs, &mut seen_blobs)?;
        Ok(graph)
    }

    /// `d` is listed by an index at `depth` (`index.json`: 0).
    fn visit(
        &self,
        d: &Descriptor,
        depth: usize,
        graph: &mut Graph,
        seen_docs: &mut BTreeSet<Sha256Digest>,
        seen_blobs: &mut BTreeSet<Sha256Digest>,
    ) -> Result<()> {
        if !seen_docs.insert(d.digest.clone()) {
            return Ok(());
        }
        if seen_docs.len() > MAX_INDEX_NODES {
            return Err(Error::TooManyDescriptors {
                max: MAX_INDEX_NODES,
            }
            .within(self.dir.display().to_string()));
        }
        let bytes = self.read_document(d)?;
        let refs: Refs = parse_json(&self.blobs.path(&d.digest), &bytes)?;
        if d.media_type.is_index() && depth + 1 > MAX_INDEX_DEPTH {
            return Err(Error::NestedTooDeep {
                index: d.digest.clone(),
                max: MAX_INDEX_DEPTH,
            });
        }
        for b in refs.config.iter().chain(refs.layers.iter()) {
            if seen_blobs.insert(b.digest.clone()) {
                graph.blobs.push(b.clone());
            }
        }
        for m in &refs.manifests {
            self.visit(m, depth + 1, graph, seen_docs, seen_blobs)?;
        }
        graph.documents.push(Document {
            descriptor: d.clone(),
            bytes,
            refs,
        });
        Ok(())
    }

    /// The path of blob `d`, which must be a regular file of its
    /// descriptor's size (content is checked when it is read).
    pub fn blob_file(&self, d: &Descriptor) -> Result<PathBuf> {
        let path = self.blobs.path(&d.digest);
        let meta = std::fs::metadata(&path).at(&path)?;
        if !meta.is_file() || meta.len() != d.size {
            return Err(Error::Invalid(format!(
                "{}: blob {} is not a {} byte file; run `nixoci verify {}`",
                self.dir.display(),
                d.digest,
                d.size,
                self.dir.display()
            )));
        }
        Ok(path)
    }
}
