//! A base image from an archive: a `docker save` tarball (what dockerTools'
//! `buildImage` and `buildLayeredImage` make, and `nixoci archive --format
//! docker`), gzipped, zstd-compressed or plain, or an OCI archive (a
//! layout as a tar). It is read into a temporary directory, every name
//! checked (relative, no `..`, regular files, directories and links
//! within the archive only). Links become copies of the archive's own
//! files, so the directory holds no link to follow; a link's target is
//! read as inside a root, as `crate::rootfs` reads an image (an absolute
//! one from the archive's top), and one that climbs out is refused.
//! It is read within unpack's default [`Limits`] (entries, the size of a
//! file, the total written, copies of links included, and the
//! uncompressed stream), and its extension headers within
//! `MAX_EXTENSION_HEADER` (1 MiB), as a layer is.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::BaseImage;
use crate::error::{Error, IoContext, Result};
use crate::layout::{BlobDir, Scratch};
use crate::oci::descriptor::{Descriptor, Platform};
use crate::oci::digest::Sha256Digest;
use crate::oci::json::parse_json;
use crate::oci::MediaType;
use crate::untar::{Budget, Limits};

/// One image of a docker archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The compression a blob starts with, as a layer media type.
fn media_type_of(head: &[u8]) -> MediaType {
    if head.starts_with(&[0x1f, 0x8b]) {
        MediaType::LAYER_GZIP
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        MediaType::LAYER_ZSTD
    } else {
        MediaType::LAYER
    }
}

/// The archive's stream, decompressed when it is gzip or zstd.
fn decompressed(path: &Path) -> Result<Box<dyn Read>> {
    let mut r = BufReader::new(fs::File::open(path).at(path)?);
    let head = r.fill_buf().at(path)?.to_vec();
    Ok(match media_type_of(&head) {
        m if m == MediaType::LAYER_GZIP => Box::new(flate2::read::MultiGzDecoder::new(r)),
        m if m == MediaType::LAYER_ZSTD => Box::new(zstd::stream::read::Decoder::new(r).at(path)?),
        _ => Box::new(r),
    })
}

/// `name` as a relative path of plain components (`./` and trailing `/`
/// dropped), or why not.
fn clean(name: &[u8]) -> std::result::Result<PathBuf, &'static str> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = PathBuf::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("it has a .. component"),
            p => out.push(std::ffi::OsStr::from_bytes(p)),
        }
    }
    if name.starts_with(b"/") {
        return Err("it is absolute");
    }
    if out.as_os_str().is_empty() {
        return Err("it is empty");
    }
    Ok(out)
}

/// Read the archive at `path` into a new temporary directory: its regular
/// files and directories; its symbolic and hard links, which must point at
/// a regular file of the archive, as copies; all within `limits` (a link's
/// copy counts as a file). Returns the directory.
fn extract(path: &Path, limits: &Limits) -> Result<Scratch> {
    let tmp = Scratch::new("base")?;
    let root = tmp.path().join("archive");
    fs::create_dir(&root).at(&root)?;
    let used = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let damaged = |e: io::Error| {
        if let Some(r) = crate::untar::refusal(&e) {
            Error::Invalid(r.to_string())
        } else if used.get() > limits.max_total_size {
            Error::Invalid(format!(
                "refused: its uncompressed content passes {} bytes, the most a base image archive may hold (unpack's --max-total-size default); reading stopped there",
                limits.max_total_size
            ))
        } else {
            Error::Invalid(format!("not a readable tar archive: {e}"))
        }
    };
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut archive = crate::untar::archive(Budget {
        inner: decompressed(path)?,
        used: used.clone(),
        limit: limits.max_total_size,
    });
    let (mut entries, mut total) = (0u64, 0u64);
    let mut sizes: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let raw = entry.path_bytes().into_owned();
        let refuse = |why: &str| {
            Error::Invalid(format!(
                "entry {:?} refused: {why}",
                String::from_utf8_lossy(&raw)
            ))
        };
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        entries += 1;
        if entries > limits.max_entries {
            return Err(refuse(&format!(
                "the archive holds more than {} entries, the most a base image archive may hold (unpack's --max-entries default)",
                limits.max_entries
            )));
        }
        let rel = clean(&raw).map_err(refuse)?;
        let dest = root.join(&rel);
        match kind {
            tar::EntryType::Directory => fs::create_dir_all(&dest).at(&dest)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                count_file(&mut total, size, limits).map_err(|why| refuse(&why))?;
                if let Some(p) = dest.parent() {
                    fs::create_dir_all(p).at(p)?;
                }
                let mut f = fs::File::create_new(&dest)
                    .map_err(|_| refuse("the archive holds it twice"))?;
                io::copy(&mut entry, &mut f).map_err(damaged)?;
                sizes.insert(rel, size);
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("a link without a target"))?
                    .into_owned();
                // A symbolic link is read as inside a root, as a
                // container reads an image's (`crate::rootfs`): a relative
                // target from its directory, an absolute one from the
                // archive's top (never this machine's); a hard link names
                // a path of the archive.
                let joined = if kind == tar::EntryType::Symlink && !target.starts_with(b"/") {
                    let mut t = raw.rsplit_once_dir();
                    t.extend_from_slice(&target);
                    t
                } else {
                    target
                };
                let resolved =
                    resolve_dots(&joined).ok_or_else(|| refuse("its link leaves the archive"))?;
                links.push((rel, clean(&resolved).map_err(refuse)?));
            }
            _ => {
                return Err(refuse(
                    "only files, directories and links belong in an image archive",
                ))
            }
        }
    }
    for (rel, target) in links {
        let (dest, src) = (root.join(&rel), root.join(&target));
        let size = sizes.get(&target).copied();
        if size.is_none() || !fs::symlink_metadata(&src).is_ok_and(|m| m.is_file()) {
            return Err(Error::Invalid(format!(
                "entry {:?} links to {:?}, which is not a file of the archive",
                rel.display(),
                target.display()
            )));
        }
        // A link becomes a copy: it is written as a file is.
        count_file(&mut total, size.unwrap_or_default(), limits)
            .map_err(|why| Error::Invalid(format!("entry {:?} refused: {why}", rel.display())))?;
        sizes.insert(rel.clone(), size.unwrap_or_default());
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).at(p)?;
        }
        fs::copy(&src, &dest).at(&dest)?;
    }
    Ok(tmp)
}

/// Count a file of `size` bytes into `total`, within `limits`; `Err` says
/// which limit it passes.
fn count_file(total: &mut u64, size: u64, limits: &Limits) -> std::result::Result<(), String> {
    if size > limits.max_file_size {
        return Err(format!(
            "it declares {size} bytes, more than {}, the most a file of a base image archive may hold (unpack's --max-file-size default)",
            limits.max_file_size
        ));
    }
    *total = total.saturating_add(size);
    if *total > limits.max_total_size {
        return Err(format!(
            "the archive's files (links counted as the copies they become) pass {} bytes, the most a base image archive may hold (unpack's --max-total-size default)",
            limits.max_total_size
        ));
    }
    Ok(())
}

trait DirOf {
    /// The directory part of a path, with its trailing `/` (empty at the
    /// top).
    fn rsplit_once_dir(&self) -> Vec<u8>;
}

impl DirOf for Vec<u8> {
    fn rsplit_once_dir(&self) -> Vec<u8> {
        match self.iter().rposition(|&b| b == b'/') {
            Some(i) => self[..=i].to_vec(),
            None => Vec::new(),
        }
    }
}

/// `a/b/../c` as `a/c`; `None` when `..` would go above the top.
fn resolve_dots(path: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for p in path.split(|&b| b == b'/') {
        match p {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join(&b'/'))
}

/// The base image in the archive at `path`: `tag` chooses among the images
/// of a docker archive (by `RepoTags`) or an OCI archive (by name).
pub fn open(path: &Path, tag: Option<&str>, platform: Option<&Platform>) -> Result<BaseImage> {
    let tmp = extract(path, &Limits::default())?;
    let root = tmp.path().join("archive");
    if root.join("oci-layout").is_file() {
        return BaseImage::from_layout(&root, tag, platform, Some(tmp));
    }
    let manifest_path = root.join("manifest.json");
    if !manifest_path.is_file() {
        return Err(Error::Invalid(
            "neither a docker archive (no manifest.json) nor an OCI archive (no oci-layout)".into(),
        ));
    }
    let bytes = fs::read(&manifest_path).at(&manifest_path)?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "its manifest.json is not a docker archive manifest: {e}"
        ))
    })?;
    let tags = |e: &DockerEntry| e.repo_tags.clone().unwrap_or_default();
    let chosen: Vec<&DockerEntry> = match tag {
        Some(t) => entries
            .iter()
            .filter(|e| {
                tags(e)
                    .iter()
                    .any(|r| r == t || r.rsplit_once(':').is_some_and(|(_, x)| x == t))
            })
            .collect(),
        None => entries.iter().collect(),
    };
    let entry = match chosen.as_slice() {
        [one] => *one,
        [] => {
            let all: Vec<String> = entries.iter().flat_map(tags).collect();
            return Err(Error::Invalid(format!(
                "no image named {:?} in it; its images: {}",
                tag.unwrap_or_default(),
                all.join(", ")
            )));
        }
        _ => {
            return Err(Error::Invalid(format!(
                "it holds {} images: give a tag (one of {})",
                chosen.len(),
                entries.iter().flat_map(tags).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let file_of = |name: &str, what: &str| -> Result<PathBuf> {
        let rel = clean(name.as_bytes())
            .map_err(|why| Error::Invalid(format!("manifest.json names {what} {name:?}: {why}")))?;
        let p = root.join(rel);
        if !p.is_file() {
            return Err(Error::Invalid(format!(
                "manifest.json names {what} {name:?}, which the archive does not hold"
            )));
        }
        Ok(p)
    };
    let config_path = file_of(&entry.config, "the config")?;
    let config_bytes = fs::read(&config_path).at(&config_path)?;
    // Named as the archive names it (the temporary copy means nothing).
    let config: Value = parse_json(Path::new(&entry.config), &config_bytes)?;
    let diff_ids: Vec<Sha256Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    d.as_str()
                        .unwrap_or_default()
                        .parse::<Sha256Digest>()
                        .map_err(|e| Error::Invalid(format!("its config has a bad diff_id: {e}")))
                })
                .collect::<Result<_>>()
        })
        .transpose()?
        .unwrap_or_default();
    if diff_ids.len() != entry.layers.len() {
        return Err(Error::Invalid(format!(
            "its config lists {} diff_ids for {} layers",
            diff_ids.len(),
            entry.layers.len()
        )));
    }
    let blobs = BlobDir::new(tmp.path());
    fs::create_dir_all(tmp.path().join("blobs/sha256")).at(tmp.path())?;
    let mut layers = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
        let file = file_of(name, "the layer")?;
        let mut r = BufReader::new(fs::File::open(&file).at(&file)?);
        let media_type = media_type_of(r.fill_buf().at(&file)?);
        let mut w = blobs.writer()?;
        io::copy(&mut r, &mut w).at(&file)?;
        let (digest, size) = w.complete()?;
        layers.push((
            Descriptor {
                media_type,
                digest,
                size,
                platform: None,
                annotations: BTreeMap::new(),
                artifact_type: None,
            },
            diff_id,
        ));
    }
    Ok(BaseImage {
        source: path.display().to_string(),
        blobs,
        layout_dir: None,
        manifest: None,
        config,
        layers,
        name: tags(entry).first().cloned(),
        _extracted: Some(tmp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_links() {
        assert_eq!(clean(b"./a/b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(clean(b"/etc/x"), Err("it is absolute"));
        assert_eq!(clean(b"a/../../x"), Err("it has a .. component"));
        assert_eq!(clean(b"./"), Err("it is empty"));
        assert_eq!(resolve_dots(b"a/b/../c").unwrap(), b"a/c");
        assert_eq!(resolve_dots(b"a/../../c"), None);
        assert_eq!(b"x/y/layer.tar".to_vec().rsplit_once_dir(), b"x/y/");
        assert_eq!(b"layer.tar".to_vec().rsplit_once_dir(), b"");
        assert_eq!(media_type_of(&[0x1f, 0x8b, 8]), MediaType::LAYER_GZIP);
        assert_eq!(media_type_of(b"abc"), MediaType::LAYER);
    }

    /// Links in an archive are resolved inside it: an absolute target from
    /// the archive's top (the old code read it from the link's directory,
    /// and refused `b/abs`), a relative one from the link's directory;
    /// one that climbs out is refused; each becomes a copy.
    #[test]
    fn links_resolve_inside_the_archive() {
        let t = tempfile::tempdir().unwrap();
        let tar_of = |links: &[(&str, &str)]| -> PathBuf {
            let path = t.path().join(format!("a{}.tar", links.len()));
            let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
            let mut h = tar::Header::new_gnu();
            h.set_size(5);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, "a/file", &b"hello"[..]).unwrap();
            for (name, target) in links {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
            b.finish().unwrap();
            path
        };
        let ok = tar_of(&[("b/abs", "/a/file"), ("b/rel", "../a/file")]);
        let dir = extract(&ok, &Limits::default()).unwrap();
        for l in ["b/abs", "b/rel"] {
            let p = dir.path().join("archive").join(l);
            assert_eq!(fs::read(&p).unwrap(), b"hello", "{l}");
            assert!(fs::symlink_metadata(&p).unwrap().is_file(), "{l}: a copy");
        }
        let out = tar_of(&[("b/x", "../a/file"), ("b/out", "../../etc/passwd")]);
        let err = extract(&out, &Limits::default()).unwrap_err().to_string();
        assert_eq!(err, "entry \"b/out\" refused: its link leaves the archive");
    }

    /// Regression: the base image archive was read without any limit, so
    /// one file linked many times became as many copies on disk. Each
    /// limit of unpack holds, links counted as the copies they become, and
    /// an oversized extension header is refused before it is read.
    #[test]
    fn an_archive_is_read_within_the_limits() {
        let t = tempfile::tempdir().unwrap();
        let write = |name: &str, entries: &[(&str, usize, Option<&str>)]| -> PathBuf {
            let path = t.path().join(name);
            let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
            for (name, size, link) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                match link {
                    Some(target) => {
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        b.append_link(&mut h, name, target).unwrap();
                    }
                    None => {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(*size as u64);
                        b.append_data(&mut h, name, &vec![b'x'; *size][..]).unwrap();
                    }
                }
            }
            b.finish().unwrap();
            path
        };
        let limits = Limits {
            max_entries: 3,
            max_file_size: 1000,
            max_total_size: 10_000,
        };
        let many = write(
            "many.tar",
            &[
                ("a", 1, None),
                ("b", 1, None),
                ("c", 1, None),
                ("d", 1, None),
            ],
        );
        assert!(extract(&many, &Limits::default()).is_ok());
        assert_eq!(
            extract(&many, &limits).unwrap_err().to_string(),
            "entry \"d\" refused: the archive holds more than 3 entries, the most a base image archive may hold (unpack's --max-entries default)"
        );
        let big = write("big.tar", &[("big", 1001, None)]);
        assert_eq!(
            extract(&big, &limits).unwrap_err().to_string(),
            "entry \"big\" refused: it declares 1001 bytes, more than 1000, the most a file of a base image archive may hold (unpack's --max-file-size default)"
        );
        // 11 copies of 1000 bytes: 11,000 bytes from a 1,000 byte file.
        let links: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
        let mut entries = vec![("f", 1000, None)];
        entries.extend(links.iter().map(|l| (l.as_str(), 0, Some("f"))));
        let copies = write("copies.tar", &entries);
        let wide = Limits {
            max_entries: 100,
            ..limits
        };
        assert_eq!(
            extract(&copies, &wide).unwrap_err().to_string(),
            "entry \"l9\" refused: the archive's files (links counted as the copies they become) pass 10000 bytes, the most a base image archive may hold (unpack's --max-total-size default)"
        );
        // The stream itself: headers and padding count.
        let small = Limits {
            max_total_size: 2000,
            max_entries: 100,
            ..limits
        };
        let names: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
        let entries: Vec<_> = names.iter().map(|n| (n.as_str(), 0, None)).collect();
        let long = write("long.tar", &entries);
        assert_eq!(
            extract(&long, &small).unwrap_err().to_string(),
            "refused: its uncompressed content passes 2000 bytes, the most a base image archive may hold (unpack's --max-total-size default); reading stopped there"
        );
        // A PAX header declaring 2 MiB, with no content: refused at its
        // header.
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/x").unwrap();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(2 << 20);
        h.set_cksum();
        let pax = t.path().join("pax.tar");
        fs::write(&pax, h.as_bytes()).unwrap();
        let err = extract(&pax, &Limits::default()).unwrap_err().to_string();
        assert!(
            err.starts_with("entry \"PaxHeaders/x\" refused: its PAX extended header (type 'x') declares 2097152 bytes, more than the 1 MiB"),
            "{err}"
        );
    }
}
