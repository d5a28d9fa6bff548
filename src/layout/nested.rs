//! The referrers of a layout (artifacts attached to its image: SBOMs,
//! signatures), kept in an image layout of their own nested at
//! `DIR/referrers/` (docs/artifacts.md, "Attached to the image, and
//! carried by a push"), so that the layout's own `index.json` holds its one image and
//! nothing else: `crane push DIR REF` takes exactly one entry there.
//!
//! The nested layout is `referrers/oci-layout`, `referrers/index.json`
//! (the root's image entries first, as they are, so that
//! `referrers:TAG` names the image; then each referrer, with its
//! `artifactType` and without a tag) and `referrers/blobs/`, a directory
//! holding one relative link, `sha256 -> ../../blobs/sha256`: every blob
//! is stored once, in `DIR/blobs`, and `oras cp -r --from-oci-layout
//! DIR/referrers:TAG REF` reads the same files. The link is one level
//! down, not `referrers/blobs -> ../blobs`, because oci-image-tool
//! refuses a layout holding anything named `blobs` that is not a
//! directory, at any depth.
//!
//! nixoci's readers take only `referrers/index.json` from it (never
//! through a link) and read every blob from `DIR/blobs`; `verify` checks
//! the whole shape ([`problems`]); the writers create it staged and
//! replace its `index.json` atomically ([`write`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, IoContext, Result};
use crate::layout::durable;
use crate::layout::staging::OCI_LAYOUT;
use crate::layout::temporaries::{
    remove_stale_temporaries, rename_no_replace, temporary_prefix, UnfinishedFile,
};
use crate::oci::descriptor::{Descriptor, Refs};
use crate::oci::json::{canonical_json, parse_json, read_limited, MAX_DOCUMENT};
use crate::oci::MediaType;

/// The name of the nested layout in its layout's directory.
pub const NAME: &str = "referrers";

/// Where the one link of the nested layout is, in it.
pub const BLOBS_LINK: &str = "blobs/sha256";

/// What that link holds: the layout's own `blobs/sha256`.
pub const BLOBS_LINK_TARGET: &str = "../../blobs/sha256";

/// The nested layout's directory.
pub fn dir_of(layout: &Path) -> PathBuf {
    layout.join(NAME)
}

/// The command that puts the one link back, for messages.
fn relink(layout: &Path) -> String {
    let blobs = dir_of(layout).join("blobs");
    format!(
        "rm -rf {0} && mkdir {0} && ln -s {BLOBS_LINK_TARGET} {0}/sha256",
        blobs.display()
    )
}

/// The descriptors of the nested layout's `index.json`, or `None` when the
/// layout has none (no `referrers` entry, or a directory of that name that
/// is not a layout: no `oci-layout`). `referrers` must be a directory, not
/// a link, and its `index.json` a regular file, not a link: nothing is
/// read from outside the layout. Its blobs are the layout's own.
pub fn read_entries(layout: &Path) -> Result<Option<Vec<Descriptor>>> {
    let Some(bytes) = read_index(layout)? else {
        return Ok(None);
    };
    let path = dir_of(layout).join("index.json");
    let index: Refs = parse_json(&path, &bytes)?;
    Ok(Some(index.manifests))
}

/// The bytes of the nested layout's `index.json` (see [`read_entries`]).
pub fn read_index(layout: &Path) -> Result<Option<Vec<u8>>> {
    let dir = dir_of(layout);
    let meta = match fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::Invalid(format!(
            "{}: a symbolic link, where a layout keeps its referrers in a directory of its own; nixoci never follows a link out of a layout: remove it, and attach the referrers again (`nixoci sbom {} --attach`, or `nixoci pull --referrers`)",
            dir.display(),
            layout.display()
        )));
    }
    if !meta.is_dir() || fs::symlink_metadata(dir.join("oci-layout")).is_err() {
        return Ok(None);
    }
    let path = dir.join("index.json");
    let meta = fs::symlink_metadata(&path).at(&path)?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{}: not a regular file (nixoci never follows a link out of a layout); run `nixoci verify {}`",
            path.display(),
            layout.display()
        )));
    }
    read_limited(&path, MAX_DOCUMENT).map(Some)
}

/// What is wrong with the shape of the nested layout at `layout`
/// (empty when it has none): `referrers` a directory, its `oci-layout`
/// and `index.json` regular files, and `blobs` a directory holding exactly
/// the link `sha256 -> ../../blobs/sha256`. Each problem says what to do.
/// The content of `oci-layout` and `index.json` is `verify`'s to check.
pub fn problems(layout: &Path) -> Vec<String> {
    let dir = dir_of(layout);
    let mut out = Vec::new();
    let meta = match fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => return vec![format!("{NAME}: cannot be read ({e})")],
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(&dir).unwrap_or_default();
        return vec![format!(
            "{NAME}: a symbolic link (to {}), where a layout keeps its referrers in a directory of its own; nixoci never follows a link out of a layout: remove it, and attach the referrers again",
            target.display()
        )];
    }
    if !meta.is_dir() {
        return vec![format!(
            "{NAME}: not a directory; a layout keeps its referrers in the layout nested at {NAME}/: remove it"
        )];
    }
    for name in ["oci-layout", "index.json"] {
        match fs::symlink_metadata(dir.join(name)) {
            Ok(m) if m.is_file() => {}
            Ok(_) => out.push(format!(
                "{NAME}/{name}: not a regular file (nixoci never follows a link out of a layout)"
            )),
            Err(_) => out.push(format!(
                "{NAME}/{name}: missing; the layout nested at {NAME}/ needs it"
            )),
        }
    }
    let blobs = dir.join("blobs");
    let fix = relink(layout);
    match fs::symlink_metadata(&blobs) {
        Err(_) => out.push(format!(
            "{NAME}/blobs: missing; it holds the link {BLOBS_LINK} -> {BLOBS_LINK_TARGET}: run `{fix}`"
        )),
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(&blobs).unwrap_or_default();
            out.push(format!(
                "{NAME}/blobs: a symbolic link (to {}), not a directory holding the one link {BLOBS_LINK} -> {BLOBS_LINK_TARGET}; nixoci never follows another link: run `{fix}`",
                target.display()
            ));
        }
        Ok(m) if !m.is_dir() => out.push(format!(
            "{NAME}/blobs: not a directory holding the one link {BLOBS_LINK} -> {BLOBS_LINK_TARGET}: run `{fix}`"
        )),
        Ok(_) => out.extend(link_problems(&blobs, &fix)),
    }
    out
}

/// The problems of `referrers/blobs`, a directory: it must hold exactly
/// the link `sha256 -> ../../blobs/sha256`.
fn link_problems(blobs: &Path, fix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut names: Vec<String> = match fs::read_dir(blobs) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => return vec![format!("{NAME}/blobs: cannot be read ({e})")],
    };
    names.sort();
    let others: Vec<&String> = names.iter().filter(|n| *n != "sha256").collect();
    if !others.is_empty() {
        out.push(format!(
            "{NAME}/blobs: holds {others:?} besides the link sha256; every blob of the layout is in its own blobs/: run `{fix}`"
        ));
    }
    let link = blobs.join("sha256");
    match fs::symlink_metadata(&link) {
        Err(_) => out.push(format!(
            "{NAME}/{BLOBS_LINK}: missing; it is the link to {BLOBS_LINK_TARGET}: run `{fix}`"
        )),
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(&link).unwrap_or_default();
            if target != Path::new(BLOBS_LINK_TARGET) {
                out.push(format!(
                    "{NAME}/{BLOBS_LINK}: a link to {}, not to {BLOBS_LINK_TARGET} (the layout's own blobs); nixoci never follows a link elsewhere: run `{fix}`",
                    target.display()
                ));
            }
        }
        Ok(m) if m.is_dir() => out.push(format!(
            "{NAME}/{BLOBS_LINK}: a directory with blobs of its own, not the link to {BLOBS_LINK_TARGET} (a copy that followed the link, such as `cp -L`, makes one): run `{fix}`"
        )),
        Ok(_) => out.push(format!(
            "{NAME}/{BLOBS_LINK}: not the link to {BLOBS_LINK_TARGET}: run `{fix}`"
        )),
    }
    out
}

/// Whether blobs may be added to the layout at `layout` in place: its
/// `blobs/sha256` must be a directory of its own, not a link. The layout
/// nested at `DIR/referrers` is one (its `blobs/sha256` is the link to
/// `DIR`'s), read as a layout by every reader but changed only through
/// `DIR`: the error names `DIR`. Another link is refused too (nixoci never
/// writes through a link out of a layout). Checked before anything is
/// written.
pub fn check_own_blobs(layout: &Path) -> Result<()> {
    let link = layout.join(BLOBS_LINK);
    let Ok(meta) = fs::symlink_metadata(&link) else {
        return Ok(());
    };
    if !meta.file_type().is_symlink() {
        return Ok(());
    }
    let target = fs::read_link(&link).unwrap_or_default();
    let parent = std::path::absolute(layout)
        .ok()
        .filter(|abs| abs.file_name() == Some(std::ffi::OsStr::new(NAME)))
        .and_then(|abs| abs.parent().map(Path::to_owned))
        .filter(|p| p.join("oci-layout").is_file());
    match parent {
        Some(parent) if target == Path::new(BLOBS_LINK_TARGET) => {
            let root = layout.parent().filter(|p| !p.as_os_str().is_empty());
            let root = root.map_or(parent.clone(), Path::to_owned);
            Err(Error::Invalid(format!(
                "{}: the layout nested in {1} that lists {1}'s referrers, not a layout of its own (its {BLOBS_LINK} is the link to {1}'s blobs): attach to {1} instead, and the referrer is listed here",
                layout.display(),
                root.display()
            )))
        }
        _ => Err(Error::Invalid(format!(
            "{}: a symbolic link (to {}); nixoci adds blobs only to a layout's own {BLOBS_LINK} directory, never through a link: replace the link with a copy of the directory it leads to",
            link.display(),
            target.display()
        ))),
    }
}

/// The `index.json` of a nested layout listing `entries` (the root's image
/// entries, then the referrers), canonical JSON.
pub fn index_bytes(entries: &[Value]) -> Vec<u8> {
    canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": MediaType::INDEX,
        "manifests": entries,
    }))
}

/// Make the nested layout of the layout at `layout` list `entries` (the
/// root's image entries first, then the referrers). A missing one is made
/// in a temporary sibling and renamed into place complete; an existing one
/// must have the shape nixoci writes ([`problems`]: else an error saying
/// what to do, nothing written), and its `index.json` is replaced
/// atomically. Both durably ([`durable`]).
pub fn write(layout: &Path, entries: &[Value]) -> Result<()> {
    let bytes = index_bytes(entries);
    let dir = dir_of(layout);
    // What a killed run left: a nested layout never renamed into place.
    remove_stale_temporaries(layout, std::ffi::OsStr::new(NAME));
    if fs::symlink_metadata(&dir).is_err() {
        match create(layout, &bytes)? {
            Created::Yes => return Ok(()),
            // Another run made it meanwhile: update that one.
            Created::Exists => {}
        }
    }
    check_shape(layout)?;
    replace_file(&dir, "index.json", &bytes)
}

/// [`problems`], as an error naming them all (what a writer refuses).
pub fn check_shape(layout: &Path) -> Result<()> {
    let wrong = problems(layout);
    if wrong.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{}: the referrers layout is not as nixoci writes it, so nothing was attached: {}",
        layout.display(),
        wrong.join("; ")
    )))
}

enum Created {
    Yes,
    Exists,
}

/// Make the nested layout in a temporary sibling, then rename it into
/// place (never over one made meanwhile).
fn create(layout: &Path, index: &[u8]) -> Result<Created> {
    use std::os::unix::fs::PermissionsExt;
    let name = std::ffi::OsStr::new(NAME);
    let tmp = tempfile::Builder::new()
        .prefix(&temporary_prefix(name))
        .tempdir_in(layout)
        .at(layout)?;
    let _tracked = UnfinishedFile::track(tmp.path());
    let at = tmp.path();
    let file = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = at.join(name);
        fs::write(&p, bytes).at(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).at(&p)
    };
    file("oci-layout", OCI_LAYOUT)?;
    fs::create_dir(at.join("blobs")).at(at)?;
    let link = at.join(BLOBS_LINK);
    std::os::unix::fs::symlink(BLOBS_LINK_TARGET, &link).at(&link)?;
    file("index.json", index)?;
    fs::set_permissions(at, fs::Permissions::from_mode(0o755)).at(at)?;
    let dest = dir_of(layout);
    durable::sync_before_rename(at, &dest)?;
    let kept = tmp.keep();
    match rename_no_replace(&kept, &dest) {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
            let _ = fs::remove_dir_all(&kept);
            return Ok(Created::Exists);
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&kept);
            return Err(Error::io(&dest, e));
        }
    }
    durable::sync_after_rename(&dest)?;
    Ok(Created::Yes)
}

/// Replace the file `name` of the directory `dir` with `bytes` (mode
/// 0644), atomically and durably: written to a temporary sibling, removed
/// if interrupted and by the next run if killed, then renamed over it.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let name = std::ffi::OsStr::new(name);
    remove_stale_temporaries(dir, name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&temporary_prefix(name))
        .tempfile_in(dir)
        .at(dir)?;
    let _tracked = UnfinishedFile::track(tmp.path());
    tmp.write_all(bytes).at(tmp.path())?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .at(tmp.path())?;
    durable::persist(tmp, &path, true)
}
