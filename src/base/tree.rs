//! The file tree a base image's layers make, whiteouts applied, and the
//! merge rules for layers put over it:
//!
//! - a directory where the base has a symbolic link (`/bin -> usr/bin`):
//!   the runtime's overlay would replace the link with the directory and
//!   hide everything the link led to;
//! - a file, a special file or a link elsewhere where the base has a
//!   symbolic link to a directory: the same (a link to the same directory
//!   passes);
//! - a file or link where the base has a directory: it would hide the
//!   directory's content;
//! - a directory where the base has a file;
//! - anything placed through a symbolic link of the base (`/bin/x` when
//!   `/bin` is a link): the layer would make a directory there.
//!
//! Each is an error naming the base layer, the path and the new layer; or,
//! for the links, followed ([`BaseTree::follow`], in `links.rs`) when
//! asked.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use super::BaseImage;
use crate::error::{Error, Result};
use crate::layer::compress::Compression;
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::{HashReader, Sha256Digest};
use crate::untar::shape::Shape;
use crate::untar::whiteout::Whiteout;
use crate::untar::{check_diff_id, normalise, EntryMeta, Limits};

pub use crate::untar::shape::Node;

/// Mode (permission bits), uid and gid of a tree entry.
pub type Meta = (u32, u64, u64);

/// The base image's file tree: every path, what it is, which base layer
/// (0-based) last put it there, and its mode and owner.
#[derive(Debug, Default)]
pub struct BaseTree {
    /// Each path: what it is, the layer that put it, its mode and owner.
    nodes: Shape<(usize, Meta)>,
    /// For messages: each base layer's digest.
    layers: Vec<Sha256Digest>,
    source: String,
}

/// One entry of a tar layer, as [`layer_entries`] reads it.
#[derive(Clone, Debug)]
pub struct LayerEntry {
    /// The path as the layer gives it.
    pub path: Vec<u8>,
    pub kind: tar::EntryType,
    pub link: Option<Vec<u8>>,
    pub meta: Meta,
}

impl LayerEntry {
    /// The path as it lands in the tree (`a/b`).
    pub fn rel(&self) -> Vec<u8> {
        normalise(&self.path)
    }

    /// What the entry makes (a hard link: a file).
    pub fn node(&self) -> Node {
        match self.kind {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Symlink => Node::Symlink(self.link.clone().unwrap_or_default()),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => {
                Node::File
            }
            _ => Node::Other,
        }
    }
}

/// Each entry of a tar layer, in order, its stream checked against
/// `diff_id` when given, read within `limits`.
pub fn layer_entries(
    blob: impl io::Read,
    desc: &Descriptor,
    diff_id: Option<&Sha256Digest>,
    limits: &Limits,
    what: &str,
) -> Result<Vec<LayerEntry>> {
    let compression = Compression::from_layer_media_type(&desc.media_type).ok_or_else(|| {
        Error::Invalid(format!(
            "{what}: media type {:?} is not a tar layer",
            desc.media_type
        ))
    })?;
    let damaged = |e: io::Error| match crate::untar::refusal(&e) {
        Some(r) => Error::Invalid(format!("{what}: {r}")),
        None => Error::Invalid(format!(
            "{what}: not a readable {compression} tar stream: {e}"
        )),
    };
    // One byte past the limit is read, so that a layer over it is told
    // from a damaged one (cut at the limit, its tar would just end early).
    let mut stream = io::Read::take(
        HashReader::new(compression.decoder(blob).map_err(damaged)?),
        limits.max_total_size.saturating_add(1),
    );
    let over_limit = || {
        Error::Invalid(format!(
            "{what}: more than {} bytes uncompressed, the most nixoci reads of one layer",
            limits.max_total_size
        ))
    };
    let mut out = Vec::new();
    let read = (|| -> Result<()> {
        let mut archive = crate::untar::archive(&mut stream);
        for entry in archive.entries().map_err(damaged)? {
            let mut entry = entry.map_err(damaged)?;
            if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
                continue;
            }
            if out.len() as u64 >= limits.max_entries {
                return Err(Error::Invalid(format!(
                    "{what}: more than {} entries",
                    limits.max_entries
                )));
            }
            let raw = entry.path_bytes().into_owned();
            let refused = |why: &dyn std::fmt::Display| {
                Error::Invalid(format!(
                    "{what}: entry {:?} refused: {why}",
                    String::from_utf8_lossy(&raw)
                ))
            };
            let meta = EntryMeta::read(&mut entry).map_err(|why| refused(&why))?;
            Whiteout::of(&meta.path).map_err(|why| refused(&why))?;
            let mode = entry.header().mode().unwrap_or(0) & 0o7777;
            out.push(LayerEntry {
                path: meta.path,
                kind: meta.kind,
                link: meta.link,
                meta: (mode, meta.uid, meta.gid),
            });
        }
        Ok(())
    })()
    .and_then(|()| io::copy(&mut stream, &mut io::sink()).map_err(damaged));
    if stream.limit() == 0 {
        return Err(over_limit());
    }
    read?;
    check_diff_id(stream.into_inner().finish().0, diff_id, what)?;
    Ok(out)
}

/// `(parent, name)` of a normalised path (`parent` empty at the top).
pub(super) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

pub(super) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

fn show(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

impl BaseTree {
    /// Read every layer of `base`, bottom first, applying whiteouts as a
    /// runtime does and refusing what `unpack` refuses
    /// ([`crate::untar::shape`]); each layer's diff_id is checked.
    pub fn read(base: &BaseImage, limits: &Limits) -> Result<BaseTree> {
        let mut tree = BaseTree {
            source: base.source.clone(),
            ..Default::default()
        };
        for (i, (desc, diff_id)) in base.layers.iter().enumerate() {
            let what = match base.source.as_str() {
                "" => format!("layer {} ({})", i + 1, desc.digest),
                source => format!("{source}: layer {} ({})", i + 1, desc.digest),
            };
            let mut blob = base.blobs.open(desc).map_err(|e| e.within(what.clone()))?;
            let entries = layer_entries(&mut blob, desc, Some(diff_id), limits, &what)?;
            io::copy(&mut blob, &mut io::sink())
                .map_err(|e| Error::io(base.blobs.path(&desc.digest), e))?;
            blob.finish(&what)?;
            tree.apply(entries, i, &what)?;
            tree.layers.push(desc.digest.clone());
        }
        Ok(tree)
    }

    /// Apply one layer's entries as layer `index` (`what` names it), as
    /// `unpack` applies them ([`crate::untar::shape`]): what it refuses is
    /// refused here, with its words.
    fn apply(&mut self, entries: Vec<LayerEntry>, index: usize, what: &str) -> Result<()> {
        self.nodes.layer();
        // The parents the layer does not name are made as a runtime makes
        // them: root's, 0755.
        let made = (index, (0o755, 0, 0));
        for e in entries {
            self.nodes
                .entry(&e.path, e.kind, e.link.as_deref(), (index, e.meta), &made)
                .map_err(|why| {
                    Error::Invalid(format!(
                        "{what}: entry {:?} refused: {why}",
                        String::from_utf8_lossy(&e.path)
                    ))
                })?;
        }
        Ok(())
    }

    /// What the base has at `path`.
    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path).map(|(n, _)| n)
    }

    /// Every path of the tree (normalised, no leading `/`) and what it is,
    /// sorted by path.
    pub fn paths(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.nodes.iter().map(|(p, (n, _))| (p.as_slice(), n))
    }

    /// Which layer (0-based) last put `path` there.
    pub fn layer_of(&self, path: &[u8]) -> Option<usize> {
        self.nodes.get(path).map(|(_, (layer, _))| *layer)
    }

    /// The layer (0-based) that last put `path` there, and its mode and
    /// owner.
    pub fn entry_of(&self, path: &[u8]) -> Option<(usize, Meta)> {
        self.nodes
            .get(path)
            .map(|(_, (layer, meta))| (*layer, *meta))
    }

    /// The mode and owner of the directory at `path`, if the base has one.
    pub fn dir_meta(&self, path: &[u8]) -> Option<Meta> {
        match self.nodes.get(path) {
            Some((Node::Dir, (_, meta))) => Some(*meta),
            _ => None,
        }
    }

    /// The store paths (`STORE/NAME`) the base holds, `store` being the
    /// store directory without its leading `/` (`nix/store`).
    pub fn store_paths(&self, store: &[u8]) -> BTreeSet<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let prefix = join(store, b"");
        self.nodes
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(prefix.as_slice()))
            .filter(|rest| !rest.is_empty() && !rest.contains(&b'/'))
            .map(|name| PathBuf::from("/").join(std::ffi::OsStr::from_bytes(&join(store, name))))
            .collect()
    }

    fn layer_name(&self, index: usize) -> String {
        format!(
            "layer {} ({})",
            index + 1,
            self.layers
                .get(index)
                .map(|d| d.short())
                .unwrap_or_default()
        )
    }

    /// Check the entries of a new layer (`what` names it) against the
    /// base: every problem, up to 20, in one error.
    pub fn check<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a [u8], &'a Node)>,
        what: &str,
    ) -> Result<()> {
        let mut problems = BTreeMap::new();
        for (path, node) in entries {
            if path.is_empty() || problems.len() >= 20 {
                continue;
            }
            // Ancestors: a link on the way, or a file where a directory
            // would have to be.
            let mut ancestor = Vec::new();
            let mut found = None;
            for part in path
                .split(|&b| b == b'/')
                .take(path.split(|&b| b == b'/').count() - 1)
            {
                ancestor = join(&ancestor, part);
                if let Some((n @ (Node::Symlink(_) | Node::File | Node::Other), (layer, _))) =
                    self.nodes.get(&ancestor)
                {
                    found = Some((ancestor.clone(), n.clone(), *layer));
                    break;
                }
            }
            let problem = if let Some((at, base_node, layer)) = found {
                let how = match base_node {
                    Node::Symlink(_) => "the layer would put a directory there, which replaces the link and hides what it leads to",
                    _ => "a directory would have to replace it",
                };
                Some(format!(
                    "{}: under {}, which is {} in its {}: {how}",
                    show(path),
                    show(&at),
                    base_node.noun(),
                    self.layer_name(layer)
                ))
            } else {
                match (self.nodes.get(path), node) {
                    (Some((b @ Node::Symlink(_), (layer, _))), Node::Dir) => Some(format!(
                        "{}: a directory, where its {} has {}: the directory would replace the link and hide what it leads to",
                        show(path),
                        self.layer_name(*layer),
                        b.noun()
                    )),
                    // A file, special file or other link over a link to a
                    // directory: what the link led to is gone from there.
                    (Some((b @ Node::Symlink(_), (layer, _))), n)
                        if self.leads_to_directory(path).is_some()
                            && !self.same_directory(path, n) =>
                    {
                        Some(format!(
                            "{}: {}, where its {} has {}, a directory: it would replace the link, and what the link leads to would be gone from {}",
                            show(path),
                            n.noun(),
                            self.layer_name(*layer),
                            b.noun(),
                            show(path)
                        ))
                    }
                    (Some((Node::Dir, (layer, _))), n) if *n != Node::Dir => Some(format!(
                        "{}: {}, where its {} has a directory: it would hide the directory's content",
                        show(path),
                        n.noun(),
                        self.layer_name(*layer)
                    )),
                    (Some((b @ (Node::File | Node::Other), (layer, _))), Node::Dir) => Some(format!(
                        "{}: a directory, where its {} has {}",
                        show(path),
                        self.layer_name(*layer),
                        b.noun()
                    )),
                    _ => None,
                }
            };
            if let Some(m) = problem {
                problems.entry(path.to_vec()).or_insert(m);
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = problems.into_values().collect();
        Err(Error::Invalid(format!(
            "{what} does not merge safely onto the {}:\n  {}\nPut the content where the base has directories (for a usr-merged base, /usr/bin rather than /bin), or follow the base's symbolic links (\"symlinks\": \"follow\" in fromImage; baseSymlinks = \"follow\" with Nix)",
            self.source,
            list.join("\n  ")
        )))
    }
}

#[cfg(test)]
mod tests;
