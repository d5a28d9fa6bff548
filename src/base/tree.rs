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
mod tests {
    use super::*;

    /// Apply `entries` as layer `index`, each given by the node it makes.
    fn apply(t: &mut BaseTree, entries: Vec<(Vec<u8>, Node, Meta)>, index: usize) {
        let entries = entries
            .into_iter()
            .map(|(path, node, meta)| {
                let (kind, link) = match node {
                    Node::Dir => (tar::EntryType::Directory, None),
                    Node::File => (tar::EntryType::Regular, None),
                    Node::Symlink(to) => (tar::EntryType::Symlink, Some(to)),
                    Node::Other => (tar::EntryType::Fifo, None),
                };
                LayerEntry {
                    path,
                    kind,
                    link,
                    meta,
                }
            })
            .collect();
        t.apply(entries, index, "test layer").unwrap();
    }

    fn tree(entries: &[(&str, Node)]) -> BaseTree {
        let mut t = BaseTree {
            source: "base image test".into(),
            layers: vec![
                "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                    .parse()
                    .unwrap(),
            ],
            ..Default::default()
        };
        apply(
            &mut t,
            entries
                .iter()
                .map(|(p, n)| (p.as_bytes().to_vec(), n.clone(), (0o755, 0, 0)))
                .collect(),
            0,
        );
        t
    }

    fn usr_merged() -> BaseTree {
        tree(&[
            ("usr", Node::Dir),
            ("usr/bin", Node::Dir),
            ("usr/bin/sh", Node::File),
            ("bin", Node::Symlink(b"usr/bin".to_vec())),
            ("lib", Node::Symlink(b"/usr/lib".to_vec())),
            ("etc", Node::Dir),
            ("etc/os-release", Node::File),
            ("loop", Node::Symlink(b"loop".to_vec())),
        ])
    }

    /// A layer over the total-size limit is refused naming the limit, not
    /// as a tar stream that ends early (it was cut at the limit before);
    /// one of exactly the limit is read.
    #[test]
    fn a_layer_over_the_size_limit_names_the_limit() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(10_000);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, "f", &[7u8; 10_000][..])
            .unwrap();
        let layer = builder.into_inner().unwrap();
        let desc = Descriptor {
            media_type: crate::oci::MediaType::LAYER,
            digest: crate::oci::digest::digest_reader(&layer[..]).unwrap().0,
            size: layer.len() as u64,
            platform: None,
            annotations: Default::default(),
            artifact_type: None,
        };
        let read = |max: u64| {
            let limits = Limits {
                max_total_size: max,
                ..Default::default()
            };
            layer_entries(&layer[..], &desc, None, &limits, "layer 1")
        };
        let err = read(layer.len() as u64 - 1).unwrap_err().to_string();
        assert!(
            err.contains(&format!("more than {} bytes uncompressed", layer.len() - 1)),
            "{err}"
        );
        let entries = read(layer.len() as u64).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].path, b"f");
    }

    #[test]
    fn follows_links_in_the_path() {
        let t = usr_merged();
        assert_eq!(t.follow(b"bin/x", false).unwrap(), b"usr/bin/x");
        assert_eq!(t.follow(b"bin", true).unwrap(), b"usr/bin");
        assert_eq!(t.follow(b"bin", false).unwrap(), b"bin");
        assert_eq!(t.follow(b"lib/libc.so", false).unwrap(), b"usr/lib/libc.so");
        assert_eq!(t.follow(b"etc/x", false).unwrap(), b"etc/x");
        assert_eq!(t.follow(b"loop/x", false), None);
    }

    #[test]
    fn the_merge_rules() {
        let t = usr_merged();
        let check = |p: &str, n: Node| t.check([(p.as_bytes(), &n)], "layer 2");
        // A directory over the /bin link, a file through it, a file over a
        // directory, a directory over a file: refused, naming the layer.
        let e = check("bin", Node::Dir).unwrap_err().to_string();
        assert!(e.contains("/bin: a directory, where its layer 1 (sha256:000000000000) has a symbolic link to usr/bin"), "{e}");
        assert!(
            e.starts_with("layer 2 does not merge safely onto the base image test:"),
            "{e}"
        );
        let e = check("bin/hello", Node::File).unwrap_err().to_string();
        assert!(
            e.contains(
                "/bin/hello: under /bin, which is a symbolic link to usr/bin in its layer 1"
            ),
            "{e}"
        );
        // A file, a special file or another link over the link to a
        // directory: refused; a link to the same directory passes.
        // A link to itself, however spelt, resolves through the old link
        // in the base, but is a loop in the image: refused too.
        for n in [
            Node::File,
            Node::Other,
            Node::Symlink(b"/opt".to_vec()),
            Node::Symlink(b"/bin".to_vec()),
            Node::Symlink(b"./bin".to_vec()),
            Node::Symlink(b"../bin".to_vec()),
            Node::Symlink(b"bin/.".to_vec()),
        ] {
            let e = check("bin", n.clone()).unwrap_err().to_string();
            assert!(
                e.contains(&format!("/bin: {}, where its layer 1 (sha256:000000000000) has a symbolic link to usr/bin, a directory: it would replace the link, and what the link leads to would be gone from /bin", n.noun())),
                "{e}"
            );
        }
        for same in [&b"/usr/bin"[..], b"usr/bin/", b"./usr/bin"] {
            check("bin", Node::Symlink(same.to_vec())).unwrap();
        }
        // lib -> /usr/lib leads nowhere in this base: nothing is hidden.
        check("lib", Node::File).unwrap();
        for (path, node, why) in [
            ("etc", Node::File, "/etc: a file, where"),
            (
                "etc/os-release",
                Node::Dir,
                "/etc/os-release: a directory, where",
            ),
            (
                "etc/os-release/x",
                Node::File,
                "/etc/os-release/x: under /etc/os-release",
            ),
        ] {
            let e = check(path, node).unwrap_err().to_string();
            assert!(e.contains(why), "{path}: {e}");
        }
        // Allowed: new paths, a file over a file, a directory over a
        // directory, a link over a link, a file over a link.
        for (p, n) in [
            ("usr/bin/hello", Node::File),
            ("usr/bin/sh", Node::File),
            ("usr", Node::Dir),
            ("bin", Node::Symlink(b"usr/bin".to_vec())),
            ("etc/os-release", Node::Symlink(b"x".to_vec())),
            ("opt/app", Node::File),
        ] {
            check(p, n.clone()).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn whiteouts() {
        let mut t = usr_merged();
        apply(
            &mut t,
            vec![
                (b"etc/.wh.os-release".to_vec(), Node::File, (0, 0, 0)),
                (b"usr/bin/.wh..wh..opq".to_vec(), Node::File, (0, 0, 0)),
                (b".wh.bin".to_vec(), Node::File, (0, 0, 0)),
            ],
            1,
        );
        assert_eq!(t.get(b"etc/os-release"), None);
        assert_eq!(t.get(b"usr/bin/sh"), None);
        assert_eq!(t.get(b"usr/bin"), Some(&Node::Dir));
        assert_eq!(t.get(b"bin"), None);
        // A file over a directory removes what was under it.
        apply(&mut t, vec![(b"usr".to_vec(), Node::File, (0, 0, 0))], 2);
        assert_eq!(t.get(b"usr/bin"), None);
        // Whiteouts hide the layers below, never their own layer's
        // entries, before or after them; parents nobody named are
        // directories of the layer that needed them.
        let mut t = usr_merged();
        let entry = |p: &str, n: Node| (p.as_bytes().to_vec(), n, (0o644, 0, 0));
        apply(
            &mut t,
            vec![
                entry("usr/bin/own", Node::File),
                entry("usr/lib/x/y", Node::File),
                entry("usr/.wh..wh..opq", Node::File),
                entry(".wh.etc", Node::File),
                entry("etc/new", Node::File),
            ],
            1,
        );
        assert_eq!(t.get(b"usr/bin/own"), Some(&Node::File));
        assert_eq!(t.get(b"usr/bin/sh"), None);
        assert_eq!(t.get(b"usr/bin"), Some(&Node::Dir));
        assert_eq!(t.get(b"usr/lib/x"), Some(&Node::Dir));
        assert_eq!(t.layer_of(b"usr/lib/x"), Some(1));
        assert_eq!(t.get(b"etc/os-release"), None);
        assert_eq!(t.get(b"etc/new"), Some(&Node::File));
        let s = tree(&[
            ("nix/store/abc-x", Node::Dir),
            ("nix/store/abc-x/bin", Node::Dir),
            ("nix/store/def-y", Node::File),
        ]);
        let paths: Vec<PathBuf> = s.store_paths(b"nix/store").into_iter().collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/nix/store/abc-x"),
                PathBuf::from("/nix/store/def-y")
            ]
        );
    }
}
