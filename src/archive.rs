//! Image archives for `podman load` / `docker load`: the OCI layout as one
//! tarball (`oci-archive`), or the `docker save` format (`manifest.json`,
//! the config, uncompressed layer tars). Both are deterministic: entries
//! sorted, fixed mtime, owners 0, fixed modes.

use std::collections::BTreeSet;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::documents::index_document;
use crate::error::{Content, Error, IoContext, Result};
use crate::layer::compress::Compression;
use crate::layout::{Layout, OutputFile, WriteMode, OCI_LAYOUT};
use crate::oci::descriptor::*;
use crate::oci::digest::{HashReader, Sha256Digest};
use crate::oci::json::{canonical_json, open_regular};

/// Which archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The OCI image layout as a tar (`podman load`, `skopeo copy oci-archive:`).
    Oci,
    /// `docker save`'s format (`docker load`, `podman load`).
    Docker,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Oci => "OCI",
            Format::Docker => "Docker",
        })
    }
}

/// What `archive` wrote.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveReport {
    pub archive: PathBuf,
    pub format: Format,
    /// The manifest (or index, for an OCI archive of one) archived.
    pub digest: String,
    /// The name the image gets when loaded (the first of `names`).
    pub name: String,
    /// Every name the image gets when loaded (a docker archive carries
    /// them all; an OCI archive only the first).
    pub names: Vec<String>,
    pub size: u64,
}

/// The names the image gets when loaded: `name` if given (`NAME[:TAG]`;
/// without a tag, each of `tags`), else the layout directory's name (less a
/// Nix store hash) with each of `tags` (`latest` when there is none). A
/// digest cannot name a loaded image, so `NAME@sha256:...` is refused.
pub fn image_names(layout: &Path, tags: &[String], name: Option<&str>) -> Result<Vec<String>> {
    let latest = ["latest".to_owned()];
    let tags = if tags.is_empty() { &latest[..] } else { tags };
    let repo = match name {
        Some(n) if n.contains('@') => {
            return Err(Error::Invalid(format!(
                "--tag {n:?}: a loaded image is named NAME[:TAG]; a digest (@sha256:...) cannot name it"
            )))
        }
        Some(n) if n.rsplit('/').next().is_some_and(|last| last.contains(':')) => {
            return check_name(n.to_owned()).map(|n| vec![n]);
        }
        Some(n) => n.to_owned(),
        None => {
            let base = layout
                .canonicalize()
                .at(layout)?
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            // /nix/store/<32 chars>-NAME
            let base = match base.split_once('-') {
                Some((hash, rest)) if hash.len() == 32 && !rest.is_empty() => rest.to_owned(),
                _ => base,
            };
            let clean: String = base
                .to_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let clean = clean
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned();
            if clean.is_empty() {
                "image".to_owned()
            } else {
                clean
            }
        }
    };
    tags.iter()
        .map(|t| check_name(format!("{repo}:{t}")))
        .collect()
}

/// A name must parse as a tagged reference (registry defaults apply only
/// when pushing).
fn check_name(full: String) -> Result<String> {
    let r = crate::oci::reference::Reference::parse(&full)
        .map_err(|e| Error::Invalid(format!("image name {full:?} is not usable: {e}")))?;
    if r.digest.is_some() {
        return Err(Error::Invalid(format!(
            "image name {full:?}: a loaded image is named NAME[:TAG], not by a digest"
        )));
    }
    Ok(full)
}

/// A tar being written with fixed metadata.
struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    mtime: u64,
}

impl<W: Write> TarOut<W> {
    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut h, name, io::empty())
    }

    fn file(&mut self, name: &str, size: u64, data: impl Read) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, size);
        self.builder.append_data(&mut h, name, data.take(size))
    }
}

/// Write `layout`'s image `tag` (or its only one) as an archive at `out`,
/// through a temporary sibling unless `mode` is in place (Nix builders).
/// An existing file is replaced only by [`WriteMode::Replace`], and never
/// when it is the layout or inside it.
pub fn archive(
    layout: &Path,
    tag: Option<&str>,
    out: &Path,
    format: Format,
    name: Option<&str>,
    platform: Option<&Platform>,
    mode: WriteMode,
) -> Result<ArchiveReport> {
    let reader = Layout::open(layout)?;
    let root = reader.select(tag)?;
    // The tag asked for, else every name the layout gives the image.
    let tags = match tag {
        Some(t) => vec![t.to_owned()],
        None => reader.names_of(&root.digest)?,
    };
    let names = image_names(layout, &tags, name)?;
    let mtime = crate::oci::time::default_mtime()?;

    let output = OutputFile::new(out, mode, &[layout.to_owned()])?;
    let mut tar = TarOut {
        builder: tar::Builder::new(io::BufWriter::with_capacity(1 << 20, output.file()?)),
        mtime,
    };
    let digest = match format {
        Format::Oci => {
            let root = oci_root(&reader, &root, platform)?;
            write_oci(&mut tar, &reader, &root, &names[0])?
        }
        Format::Docker => write_docker(&mut tar, &reader, &root, &names, platform)?,
    };
    let sink = |e| Error::io(out, e);
    tar.builder
        .into_inner()
        .map_err(sink)?
        .flush()
        .map_err(sink)?;
    output.commit()?;
    Ok(ArchiveReport {
        archive: out.to_owned(),
        format,
        digest,
        name: names[0].clone(),
        names,
        size: std::fs::metadata(out).at(out)?.len(),
    })
}

/// Copy a blob into the archive, checking its digest and size as it goes.
fn copy_blob<W: Write>(tar: &mut TarOut<W>, layout: &Layout, d: &Descriptor) -> Result<()> {
    let path = layout.blob_file(d)?;
    let mut reader = layout.open_blob(d)?;
    tar.file(
        &format!("blobs/sha256/{}", d.digest.hex()),
        d.size,
        &mut reader,
    )
    .map_err(|e| Error::io(&path, e))?;
    reader.finish(&path.display().to_string())
}

/// What an OCI archive holds: with `platform`, that platform's manifest
/// alone (for tools that cannot choose from an index); else the image as
/// it is, which podman and skopeo load only when an index lists manifests,
/// not other indexes.
fn oci_root(layout: &Layout, root: &Descriptor, platform: Option<&Platform>) -> Result<Descriptor> {
    if !root.media_type.is_index() || platform.is_some() {
        return layout.choose(root, platform);
    }
    if let Some(nested) = layout
        .refs(root)?
        .manifests
        .iter()
        .find(|m| m.media_type.is_index())
    {
        return Err(Error::Invalid(format!(
            "image index {} lists another image index ({}), which podman load and skopeo cannot take from an OCI archive; archive one platform with --platform OS/ARCH, or use --format docker",
            root.digest, nested.digest
        )));
    }
    Ok(root.clone())
}

fn write_oci<W: Write>(
    tar: &mut TarOut<W>,
    layout: &Layout,
    root: &Descriptor,
    name: &str,
) -> Result<String> {
    let io = |e| Error::io("(archive)", e);
    tar.dir("blobs/").map_err(io)?;
    tar.dir("blobs/sha256/").map_err(io)?;
    // Every blob under the root, each once, in digest order.
    for d in layout.graph(root)?.all_by_digest() {
        copy_blob(tar, layout, d)?;
    }
    // One descriptor: podman loads an archive naming exactly one image.
    let mut named = Descriptor {
        annotations: Default::default(),
        ..root.clone()
    };
    named
        .annotations
        .insert(ANNOTATION_REF_NAME.to_owned(), name.to_owned());
    let index = canonical_json(&index_document(&[named], &Default::default(), None)?);
    tar.file("index.json", index.len() as u64, &index[..])
        .map_err(io)?;
    tar.file("oci-layout", OCI_LAYOUT.len() as u64, OCI_LAYOUT)
        .map_err(io)?;
    Ok(root.digest.to_string())
}

fn write_docker<W: Write>(
    tar: &mut TarOut<W>,
    layout: &Layout,
    root: &Descriptor,
    names: &[String],
    platform: Option<&Platform>,
) -> Result<String> {
    let io = |e| Error::io("(archive)", e);
    // The docker format holds one image: pick a platform from an index.
    let image = layout.image(&layout.choose(root, platform)?)?;
    let (manifest, config_desc, config_bytes) =
        (&image.manifest, &image.config, &image.config_bytes);
    // The diff_ids the config lists (strings), one for each layer.
    let listed = image.config_value()?["rootfs"]["diff_ids"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|d| d.is_string()).count());
    let diff_ids: Vec<Sha256Digest> = image.diff_ids()?.into_iter().flatten().collect();
    if diff_ids.len() != image.layers.len() || listed != image.layers.len() {
        return Err(Error::Invalid(format!(
            "config {} lists {listed} diff_ids for {} layers",
            config_desc.digest,
            image.layers.len()
        )));
    }
    let config_name = format!("{}.json", config_desc.digest.hex());
    let mut layer_names = Vec::new();
    let mut written = BTreeSet::new();
    // Entries in name order: config, layers by diff_id, manifest.json.
    let mut entries: Vec<(String, Option<(Descriptor, Sha256Digest)>)> =
        vec![(config_name.clone(), None)];
    for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
        let name = format!("{}.tar", diff_id.hex());
        layer_names.push(name.clone());
        if written.insert(name.clone()) {
            entries.push((name, Some((layer.clone(), diff_id.clone()))));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (entry, layer) in entries {
        match layer {
            None => tar
                .file(&entry, config_bytes.len() as u64, &config_bytes[..])
                .map_err(io)?,
            Some((layer, diff_id)) => {
                write_layer_uncompressed(tar, layout, &layer, &diff_id, &entry)?
            }
        }
    }
    let manifest_json = canonical_json(&json!([{
        "Config": config_name,
        "RepoTags": names,
        "Layers": layer_names,
    }]));
    tar.file(
        "manifest.json",
        manifest_json.len() as u64,
        &manifest_json[..],
    )
    .map_err(io)?;
    Ok(manifest.digest.to_string())
}

/// A layer as an uncompressed tar entry: one pass to learn its size (and
/// check its diff_id), one to write it.
fn write_layer_uncompressed<W: Write>(
    tar: &mut TarOut<W>,
    layout: &Layout,
    layer: &Descriptor,
    diff_id: &Sha256Digest,
    entry: &str,
) -> Result<()> {
    let compression = Compression::from_layer_media_type(&layer.media_type).ok_or_else(|| {
        Error::Invalid(format!(
            "layer {} has media type {:?}, which nixoci cannot decompress",
            layer.digest, layer.media_type
        ))
    })?;
    let path = layout.blob_file(layer)?;
    let open = || -> Result<HashReader<Box<dyn Read>>> {
        let file = BufReader::with_capacity(1 << 20, open_regular(&path)?.0);
        Ok(HashReader::new(compression.decoder(file).at(&path)?))
    };
    // The first pass also checks the compressed blob against its digest.
    let mut blob = layout.open_blob(layer)?;
    let mut first = HashReader::new(compression.decoder(&mut blob).at(&path)?);
    io::copy(&mut first, &mut io::sink()).at(&path)?;
    let (found, size) = first.finish();
    blob.finish(&path.display().to_string())?;
    if found != *diff_id {
        return Err(Error::DigestMismatch {
            context: format!("uncompressed content of layer {}", layer.digest),
            expected: Content::Digest(diff_id.clone()),
            found: Content::Digest(found),
        });
    }
    let mut second = open()?;
    tar.file(entry, size, &mut second)
        .map_err(|e| Error::io(&path, e))?;
    let (again, n) = second.finish();
    if again != found || n != size {
        return Err(Error::Invalid(format!(
            "{}: the layer changed while it was archived",
            path.display()
        )));
    }
    Ok(())
}
