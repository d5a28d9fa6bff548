//! Regular files of a base image read whole, as a container would see
//! them: through the base's symbolic links, from the layer that last put
//! each there (a hard link read through to its target in that layer).
//! Each layer holding one is read once for all of them.

use std::collections::BTreeMap;
use std::io::Read;

use super::tree::{BaseTree, Meta, Node};
use super::BaseImage;
use crate::error::{Error, Result};
use crate::layer::compress::Compression;
use crate::untar::{normalise, EntryMeta};

/// The most bytes read of one file (account files are small).
const MAX_FILE: u64 = 16 << 20;

/// The most hard links followed in a row.
const MAX_HARD_LINKS: usize = 8;

/// A file of the base image.
#[derive(Debug, Clone)]
pub struct BaseFile {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its mode and owner.
    pub meta: Meta,
    /// The layer holding it, as messages name it (`2 (sha256:…) of the
    /// base image PATH`).
    pub layer: String,
}

/// The file at each of `paths` (absolute) in the base, symbolic links
/// followed as a container follows them; `None` where there is nothing
/// (or a link leading nowhere). Anything else than a regular file there is
/// an error naming it.
pub fn read_files(
    image: &BaseImage,
    tree: &BaseTree,
    paths: &[&str],
) -> Result<Vec<Option<BaseFile>>> {
    // Each file found: where it is, its layer, its metadata, its name in
    // messages.
    let mut wanted = Vec::new();
    for path in paths {
        let what = format!("{path} in the {}", image.source);
        let rel = path.trim_start_matches('/').as_bytes();
        let at = tree.follow(rel, true).ok_or_else(|| {
            Error::Invalid(format!(
                "{what}: its symbolic links loop (more than 40 followed)"
            ))
        })?;
        match tree.get(&at) {
            None => wanted.push(None),
            Some(Node::File) => {
                let (index, meta) = tree.entry_of(&at).expect("the path is in the tree");
                let layer = format!(
                    "{} ({}) of the {}",
                    index + 1,
                    image.layers[index].0.digest.short(),
                    image.source
                );
                let shown = String::from_utf8_lossy(&at).into_owned();
                let what = format!("{what} (at /{shown}, layer {layer})");
                wanted.push(Some((at, index, meta, layer, what)));
            }
            Some(n) => {
                return Err(Error::Invalid(format!(
                    "{what}: it is {}, not a regular file; fix the base image",
                    n.noun()
                )))
            }
        }
    }
    let mut out = Vec::new();
    let mut read: BTreeMap<usize, BTreeMap<Vec<u8>, Found>> = BTreeMap::new();
    for w in wanted {
        let Some((at, index, meta, layer, what)) = w else {
            out.push(None);
            continue;
        };
        let mut want = at;
        let mut bytes = None;
        for _ in 0..=MAX_HARD_LINKS {
            let found = match read.get(&index).and_then(|m| m.get(&want)) {
                Some(f) => f.clone(),
                None => {
                    // Every path asked for in this layer, in one pass.
                    let mut asked: Vec<Vec<u8>> = paths
                        .iter()
                        .filter_map(|p| tree.follow(p.trim_start_matches('/').as_bytes(), true))
                        .collect();
                    asked.push(want.clone());
                    let got = scan_layer(image, index, &asked, &what)?;
                    let f = got.get(&want).cloned().unwrap_or(Found::Missing);
                    read.entry(index).or_default().extend(got);
                    f
                }
            };
            match found {
                Found::Bytes(b) => {
                    bytes = Some(b);
                    break;
                }
                Found::Link(to) => want = to,
                Found::Missing => {
                    return Err(Error::Invalid(format!(
                    "{what}: a hard link whose target /{} is not in that layer; fix the base image",
                    String::from_utf8_lossy(&want)
                )))
                }
            }
        }
        let bytes = bytes.ok_or_else(|| {
            Error::Invalid(format!(
                "{what}: more than {MAX_HARD_LINKS} hard links in a row; fix the base image"
            ))
        })?;
        out.push(Some(BaseFile { bytes, meta, layer }));
    }
    Ok(out)
}

/// What a layer holds at a path: bytes, or the target of a hard link.
#[derive(Clone)]
enum Found {
    Bytes(Vec<u8>),
    Link(Vec<u8>),
    Missing,
}

/// The last entry at each of `asked` in layer `index` (`what` names the
/// file looked for, in errors).
fn scan_layer(
    image: &BaseImage,
    index: usize,
    asked: &[Vec<u8>],
    what: &str,
) -> Result<BTreeMap<Vec<u8>, Found>> {
    let (desc, _) = &image.layers[index];
    let damaged =
        |e: std::io::Error| Error::Invalid(format!("{what}: its layer is not readable: {e}"));
    let compression = Compression::from_layer_media_type(&desc.media_type).ok_or_else(|| {
        Error::Invalid(format!(
            "{what}: media type {:?} is not a tar layer",
            desc.media_type
        ))
    })?;
    let blob = image
        .blobs
        .open(desc)
        .map_err(|e| e.within(what.to_owned()))?;
    let mut archive = crate::untar::archive(compression.decoder(blob).map_err(damaged)?);
    let mut found = BTreeMap::new();
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            continue;
        }
        let meta =
            EntryMeta::read(&mut entry).map_err(|why| Error::Invalid(format!("{what}: {why}")))?;
        let path = normalise(&meta.path);
        if !asked.contains(&path) {
            continue;
        }
        let f = match meta.kind {
            tar::EntryType::Link => Found::Link(normalise(&meta.link.unwrap_or_default())),
            _ if meta.sparse.is_some() => {
                return Err(Error::Invalid(format!(
                    "{what}: /{} is stored as a sparse file, which nixoci does not read here; fix the base image",
                    String::from_utf8_lossy(&path)
                )))
            }
            _ if meta.size > MAX_FILE => {
                return Err(Error::Invalid(format!(
                    "{what}: /{} has {} bytes, more than the {MAX_FILE} nixoci reads of it",
                    String::from_utf8_lossy(&path),
                    meta.size
                )))
            }
            _ => {
                let mut bytes = Vec::with_capacity(meta.size as usize);
                (&mut entry)
                    .take(MAX_FILE)
                    .read_to_end(&mut bytes)
                    .map_err(damaged)?;
                Found::Bytes(bytes)
            }
        };
        found.insert(path, f);
    }
    Ok(found)
}
