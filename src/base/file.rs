//! One regular file of a base image read whole, as a container would see
//! it: through the base's symbolic links, from the layer that last put it
//! there (a hard link read through to its target in that layer).

use std::io::Read;

use super::tree::{BaseTree, Meta, Node};
use super::BaseImage;
use crate::error::{Error, Result};
use crate::layer::compress::Compression;
use crate::untar::{normalise, EntryMeta};

/// The most bytes read of one file (account files are small).
const MAX_FILE: u64 = 16 << 20;

/// A file of the base image.
#[derive(Debug, Clone)]
pub struct BaseFile {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its mode and owner.
    pub meta: Meta,
    /// The layer holding it, as messages name it (`2 (sha256:…) of base
    /// image PATH`).
    pub layer: String,
}

/// The file at `path` (absolute) in the base, its symbolic links followed
/// as a container follows them; `None` when there is nothing there (or a
/// link leading nowhere). Anything else than a regular file there is an
/// error naming it.
pub fn read_file(image: &BaseImage, tree: &BaseTree, path: &str) -> Result<Option<BaseFile>> {
    let what = format!("{path} in the {}", image.source);
    let rel = path.trim_start_matches('/').as_bytes();
    let at = tree.follow(rel, true).ok_or_else(|| {
        Error::Invalid(format!(
            "{what}: its symbolic links loop (more than 40 followed)"
        ))
    })?;
    match tree.get(&at) {
        None => return Ok(None),
        Some(Node::File) => {}
        Some(n) => {
            return Err(Error::Invalid(format!(
                "{what}: it is {}, not a regular file; fix the base image",
                n.noun()
            )))
        }
    }
    let (index, meta) = tree.entry_of(&at).expect("the path is in the tree");
    let (desc, _) = &image.layers[index];
    let layer = format!(
        "{} ({}) of the {}",
        index + 1,
        desc.digest.short(),
        image.source
    );
    let shown = format!("/{}", String::from_utf8_lossy(&at));
    let within = format!("{what} (at {shown}, layer {layer})");
    let mut want = at;
    // A hard link names its target, read in a second pass (at most a few).
    for _ in 0..8 {
        let found = find_in_layer(image, index, &want, &within)?;
        match found {
            Found::Bytes(bytes) => return Ok(Some(BaseFile { bytes, meta, layer })),
            Found::Link(to) => want = to,
            Found::Missing => {
                return Err(Error::Invalid(format!(
                "{within}: a hard link whose target /{} is not in that layer; fix the base image",
                String::from_utf8_lossy(&want)
            )))
            }
        }
    }
    Err(Error::Invalid(format!(
        "{within}: too many hard links in a row; fix the base image"
    )))
}

enum Found {
    Bytes(Vec<u8>),
    Link(Vec<u8>),
    Missing,
}

/// The last entry at `want` in layer `index`: its bytes, or the target of
/// a hard link.
fn find_in_layer(image: &BaseImage, index: usize, want: &[u8], what: &str) -> Result<Found> {
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
    let mut found = Found::Missing;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            continue;
        }
        let meta =
            EntryMeta::read(&mut entry).map_err(|why| Error::Invalid(format!("{what}: {why}")))?;
        if normalise(&meta.path) != want {
            continue;
        }
        found = match meta.kind {
            tar::EntryType::Link => Found::Link(normalise(&meta.link.unwrap_or_default())),
            _ if meta.sparse.is_some() => {
                return Err(Error::Invalid(format!(
                    "{what}: stored as a sparse file, which nixoci does not read here; fix the base image"
                )))
            }
            _ if meta.size > MAX_FILE => {
                return Err(Error::Invalid(format!(
                    "{what}: {} bytes, more than the {MAX_FILE} nixoci reads of it",
                    meta.size
                )))
            }
            _ => {
                let mut bytes = Vec::with_capacity(meta.size as usize);
                (&mut entry).take(MAX_FILE).read_to_end(&mut bytes).map_err(damaged)?;
                Found::Bytes(bytes)
            }
        };
    }
    Ok(found)
}
