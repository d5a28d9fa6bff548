//! Artifacts' files (ORAS style: a blob per file, named by its
//! `org.opencontainers.image.title` annotation; a directory packed as a
//! tar+gzip titled with its name). A name is a name, never a path: it
//! lands directly in the target directory or is refused; a packed
//! directory writes only under its own title, and its links stay inside
//! it (as oras-go's file store requires); what a pull writes belongs to
//! the user who pulls, writable by them.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::layer::compress::Compression;
use crate::layout::{Image, Layout};
use crate::oci::descriptor::Descriptor;
use crate::oci::digest::HashReader;
use crate::oci::MediaType;
use crate::untar::{Budget, EntryMeta, Limits};

/// The annotation that names an artifact file.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// ORAS's annotation marking a packed directory.
pub const ANNOTATION_UNPACK: &str = "io.deis.oras.content.unpack";
/// ORAS's annotation giving a packed directory's tar digest (of the tar
/// before compression): checked when present, as ORAS's clients check it.
pub const ANNOTATION_CONTENT_DIGEST: &str = "io.deis.oras.content.digest";

/// Check an artifact file name: not empty, at most 255 bytes, no `/`, `\`,
/// NUL or other control character, not `.` or `..` (nor containing `..`),
/// no leading or trailing space.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Invalid(format!("artifact file name {name:?} {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > 255 {
        return bad("is longer than 255 bytes");
    }
    if name.contains(['/', '\\']) {
        // The oras CLI titles a file with the path it is pushed by
        // (`oras push REF dir/file` gives `dir/file`): say how to push it
        // under its name.
        return match name.rsplit_once('/') {
            Some((dir, file))
                if !dir.is_empty() && !file.is_empty() && !name.contains(char::is_control) =>
            {
                bad(&format!(
                "contains a path separator; a name is not a path (oras titles a file with the path \
                 it is pushed by: push it from its own directory, `cd {dir} && oras push REF {file}`)"
                ))
            }
            _ => bad("contains a path separator; a name is not a path"),
        };
    }
    if name.contains("..") || name == "." {
        return bad("contains '..' or is '.'");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a NUL or control character");
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return bad("starts or ends with white space");
    }
    Ok(())
}

/// The layer's title, if it has one.
pub fn title(desc: &Descriptor) -> Option<&str> {
    desc.annotations.get(ANNOTATION_TITLE).map(String::as_str)
}

/// Whether a titled layer is a packed directory, as `unpack` reads one:
/// ORAS's mark (the Go client's) or the tar+gzip media type (the python
/// client's only sign), of a media type read as a tar. Any other titled
/// layer is a file of the blob's bytes.
pub fn is_packed(desc: &Descriptor) -> bool {
    (desc
        .annotations
        .get(ANNOTATION_UNPACK)
        .is_some_and(|v| v == "true")
        || desc.media_type == MediaType::LAYER_GZIP)
        && Compression::from_layer_media_type(&desc.media_type).is_some()
}

/// Whether an image is an artifact, not a root filesystem: its config is
/// not an image config (OCI 1.1's empty descriptor, ORAS's unknown
/// config), or every one of its layers is titled (ORAS's files, whatever
/// the config says).
pub fn is_artifact(image: &Image) -> bool {
    !image.config.media_type.is_config()
        || (!image.layers.is_empty() && image.layers.iter().all(|l| title(l).is_some()))
}

/// Every layer of `image` is titled, each title a valid name
/// ([`validate_name`]) given once: an artifact's layers are its files.
pub fn check_titles(image: &Image) -> Result<()> {
    let untitled: Vec<usize> = (0..image.layers.len())
        .filter(|i| title(&image.layers[*i]).is_none())
        .collect();
    if !image.layers.is_empty() && untitled.len() == image.layers.len() {
        return Err(Error::Invalid(format!(
            "not an artifact: its layers have no titles ({ANNOTATION_TITLE}); use `nixoci pull` then `unpack`"
        )));
    }
    if let Some(&i) = untitled.first() {
        return Err(Error::Invalid(format!(
            "layer {i} ({}) has no title ({ANNOTATION_TITLE}) beside titled ones: an artifact's layers are files named by their titles, and this one would be written as a root filesystem; refused",
            image.layers[i].digest
        )));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, l) in image.layers.iter().enumerate() {
        let t = title(l).unwrap_or_default();
        validate_name(t).map_err(|e| e.within(format!("layer {i} ({})", l.digest)))?;
        if let Some(first) = seen.insert(t, i) {
            return Err(Error::Invalid(format!(
                "layers {first} and {i} are both titled {t:?}: an artifact's files need distinct names"
            )));
        }
    }
    Ok(())
}

/// Check `image` as an artifact before anything of it is written: its
/// titles ([`check_titles`]), and each packed directory's tar read
/// through: every entry under the title (the title itself a directory),
/// no whiteout, hard links to entries under the title, and symbolic links
/// that resolve inside it, through the links of the tar itself.
pub fn check_files(layout: &Layout, image: &Image, limits: &Limits) -> Result<()> {
    check_titles(image)?;
    for (i, desc) in image.layers.iter().enumerate() {
        if is_packed(desc) {
            check_packed(layout, i, desc, limits)?;
        }
    }
    Ok(())
}

/// A path's components as the extractor takes them: `.` and empty ones
/// dropped; `None` for an absolute path, a `..` or a NUL.
fn components(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    if raw.starts_with(b"/") || raw.contains(&0) {
        return None;
    }
    let comps: Vec<Vec<u8>> = raw
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect();
    (!comps.iter().any(|c| c == b"..")).then_some(comps)
}

fn check_packed(layout: &Layout, index: usize, desc: &Descriptor, limits: &Limits) -> Result<()> {
    let name = title(desc).unwrap_or_default();
    let refused = |entry: &[u8], why: &str| {
        Error::Invalid(format!(
            "layer {index} ({}), the packed directory {name:?}: entry {:?} refused: {why}; a packed directory writes only under its own title, and nothing was written",
            desc.digest,
            String::from_utf8_lossy(entry)
        ))
    };
    let used = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let damaged = |e: io::Error| {
        if let Some(r) = crate::untar::refusal(&e) {
            refused(&r.name, &r.why)
        } else if used.get() > limits.max_total_size {
            Error::Invalid(format!(
                "layer {index} ({}): refused: its uncompressed content passes --max-total-size {} bytes",
                desc.digest, limits.max_total_size
            ))
        } else {
            Error::Invalid(format!("layer {index} ({}): damaged: {e}", desc.digest))
        }
    };
    let compression = Compression::from_layer_media_type(&desc.media_type)
        .ok_or_else(|| Error::Invalid(format!("layer {index}: not a tar")))?;
    let mut blob = layout.open_blob(desc)?;
    let stream = Budget {
        inner: compression.decoder(&mut blob).map_err(damaged)?,
        used: used.clone(),
        limit: limits.max_total_size,
    };
    let mut archive = crate::untar::archive(HashReader::new(stream));
    // The symbolic links of the tree the tar makes (a hard link to one is
    // one too), by path.
    let mut links: BTreeMap<Vec<Vec<u8>>, Vec<u8>> = BTreeMap::new();
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        if matches!(entry.header().entry_type(), tar::EntryType::XGlobalHeader) {
            continue;
        }
        let meta = EntryMeta::read(&mut entry).map_err(|why| refused(&entry.path_bytes(), &why))?;
        let raw = meta.path.as_slice();
        let comps = components(raw).ok_or_else(|| {
            refused(
                raw,
                "an absolute path, a '..' or a NUL leaves the directory",
            )
        })?;
        let Some(top) = comps.first() else {
            if meta.kind == tar::EntryType::Directory {
                continue; // "./": the root, which the extractor leaves as it is
            }
            return Err(refused(raw, "it names the root"));
        };
        if top.as_slice() != name.as_bytes() {
            return Err(refused(raw, &format!("it is outside {name:?}")));
        }
        if comps.iter().any(|c| c.starts_with(b".wh.")) {
            return Err(refused(
                raw,
                "a whiteout (.wh.), which would remove files instead of adding one",
            ));
        }
        if comps.len() == 1 && meta.kind != tar::EntryType::Directory {
            return Err(refused(
                raw,
                &format!(
                    "the title names a directory, but this entry is {}",
                    match meta.kind {
                        tar::EntryType::Symlink => "a symbolic link".to_owned(),
                        tar::EntryType::Link => "a hard link".to_owned(),
                        k if k.is_file() => "a file".to_owned(),
                        k => format!("of type {k:?}"),
                    }
                ),
            ));
        }
        match meta.kind {
            tar::EntryType::Symlink => {
                links.insert(comps, meta.link.clone().unwrap_or_default());
            }
            tar::EntryType::Link => {
                let target = meta.link.as_deref().unwrap_or_default();
                let t = components(target)
                    .filter(|t| t.first().is_some_and(|c| c.as_slice() == name.as_bytes()))
                    .ok_or_else(|| {
                        refused(
                            raw,
                            &format!(
                                "its hard link target {:?} is outside {name:?}",
                                String::from_utf8_lossy(target)
                            ),
                        )
                    })?;
                match links.get(&t).cloned() {
                    Some(l) => links.insert(comps, l),
                    None => links.remove(&comps),
                };
            }
            _ => {
                links.remove(&comps);
            }
        }
    }
    for (path, target) in &links {
        if let Err(why) = resolve_inside(path, target, &links) {
            let shown = path.join(&b'/');
            return Err(refused(
                &shown,
                &format!(
                    "its symbolic link to {:?} leads out of {name:?} ({why})",
                    String::from_utf8_lossy(target)
                ),
            ));
        }
    }
    // The tar's own digest, when the pusher gave one: the whole stream,
    // its end-of-archive blocks and padding too.
    let mut rest = archive.into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(damaged)?;
    let (found, _) = rest.finish();
    if let Some(expected) = desc.annotations.get(ANNOTATION_CONTENT_DIGEST) {
        if *expected != found.to_string() {
            return Err(Error::Invalid(format!(
                "layer {index} ({}), the packed directory {name:?}: its tar has digest {found}, but its {ANNOTATION_CONTENT_DIGEST} annotation says {expected}; the artifact is damaged or was changed after it was packed, and nothing was written",
                desc.digest
            )));
        }
    }
    Ok(())
}

/// Resolve the link at `path` (whose first component is the packed
/// directory) to `target`, following the links of `links` met on the way
/// as the kernel would: `Err` when it leaves the directory.
fn resolve_inside(
    path: &[Vec<u8>],
    target: &[u8],
    links: &BTreeMap<Vec<Vec<u8>>, Vec<u8>>,
) -> std::result::Result<(), &'static str> {
    let split = |t: &[u8]| -> std::result::Result<Vec<Vec<u8>>, &'static str> {
        if t.starts_with(b"/") {
            return Err("an absolute link");
        }
        Ok(t.split(|b| *b == b'/').map(<[u8]>::to_vec).collect())
    };
    let mut at: Vec<Vec<u8>> = path[..path.len() - 1].to_vec();
    let mut todo: VecDeque<Vec<u8>> = split(target)?.into();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_slice() {
            b"" | b"." => {}
            b".." => {
                at.pop();
                if at.is_empty() {
                    return Err("it climbs above the directory");
                }
            }
            _ => {
                at.push(c);
                // A link on the way is followed (the last component is a
                // link of its own, checked on its own).
                if let Some(next) = links.get(&at).filter(|_| !todo.is_empty()) {
                    hops += 1;
                    if hops > 40 {
                        return Err("too many levels of links");
                    }
                    at.pop();
                    for c in split(next)?.into_iter().rev() {
                        todo.push_front(c);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Give what a pull wrote under `root` (and `root`) to the user who
/// pulls, as ORAS's clients write it: their own (when running as root,
/// the tar's owners are not kept), with the tar's permission bits plus
/// read and write for the owner, and search for directories, so that they
/// can change and remove it (a directory nixoci packs holds Nix's
/// 0555/0444, which comes out 0755/0644, as ORAS packs one). The
/// set-user-ID, set-group-ID and sticky bits are dropped. Links are left
/// as they are.
pub fn make_own(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid and getegid take nothing and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let as_root = uid == 0;
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).at(&p)?;
        if as_root {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).at(&p)?;
        }
        if m.file_type().is_symlink() {
            continue;
        }
        let add = if m.is_dir() { 0o700 } else { 0o600 };
        // Permission bits only: a set-user-ID or set-group-ID bit from a
        // registry would make a pull as root write root-owned setuid
        // programs; an artifact's files are data, not a root filesystem.
        let mode = m.permissions().mode() & 0o777 | add;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).at(&p)?;
        if m.is_dir() {
            for e in std::fs::read_dir(&p).at(&p)? {
                todo.push(e.at(&p)?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["config.json", "a b", "x.tar.gz", "é", &"n".repeat(255)] {
            validate_name(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        let (separator, dots) = ("contains a path separator", "contains '..' or is '.'");
        let (control, space) = (
            "contains a NUL or control",
            "starts or ends with white space",
        );
        for (bad, why) in [
            ("", "is empty"),
            (".", dots),
            ("..", dots),
            ("a/b", separator),
            ("a\\b", separator),
            ("../x", separator),
            ("x..y", dots),
            ("a\0b", control),
            (" x", space),
            ("x ", space),
            ("\tx", control),
            (&"n".repeat(256), "is longer than 255 bytes"),
        ] {
            let e = validate_name(bad).expect_err(bad).to_string();
            assert!(
                e.contains(&format!("artifact file name {bad:?} {why}")),
                "{e}"
            );
        }
        // A title with a path (as the oras CLI gives one) says how to push
        // the file under its name; one with a control character is not
        // printed but escaped.
        let e = validate_name("out/app.tar.gz").unwrap_err().to_string();
        assert!(e.ends_with("`cd out && oras push REF app.tar.gz`)"), "{e}");
        let e = validate_name("a\nb/c").unwrap_err().to_string();
        assert!(
            e.ends_with("a name is not a path") && !e.contains('\n'),
            "{e}"
        );
    }

    /// Links resolved through the tar's own links, as the kernel would.
    #[test]
    fn links_resolve_inside_or_not() {
        let p = |s: &str| -> Vec<Vec<u8>> { s.split('/').map(|c| c.as_bytes().to_vec()).collect() };
        let links: BTreeMap<Vec<Vec<u8>>, Vec<u8>> = [
            ("site/here", "."),
            ("site/sub/up", ".."),
            ("site/loop", "loop/x"),
            ("site/abs", "/etc"),
        ]
        .into_iter()
        .map(|(k, v)| (p(k), v.as_bytes().to_vec()))
        .collect();
        let at = p("site/l");
        for (target, want) in [
            ("index.html", Ok(())),
            ("sub/../index.html", Ok(())),
            ("sub/up/index.html", Ok(())),
            ("here/here/x", Ok(())),
            ("..", Err("it climbs above the directory")),
            ("here/../x", Err("it climbs above the directory")),
            ("sub/up/../x", Err("it climbs above the directory")),
            ("/x", Err("an absolute link")),
            ("abs/passwd", Err("an absolute link")),
            ("loop/y", Err("too many levels of links")),
        ] {
            assert_eq!(
                resolve_inside(&at, target.as_bytes(), &links),
                want,
                "{target}"
            );
        }
    }
}
