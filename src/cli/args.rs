//! How a command reads its image arguments: a `LAYOUT[:TAG]` (a layout
//! directory, with the tag when it holds several images), a registry
//! reference, or a `DIR|REF` that may be either. The rules are here, once,
//! for the local and the registry commands alike.

use std::path::{Path, PathBuf};

use crate::oci::reference::Reference;
use anyhow::Result;

/// What a `DIR|REF` (or `LAYOUT[:TAG]`) argument names.
#[derive(Debug)]
pub enum Target {
    /// An image layout directory, and the tag asked for (`LAYOUT:TAG`).
    Layout { dir: PathBuf, tag: Option<String> },
    /// An image in a registry.
    Remote(Reference),
}

/// Whether `arg` is written as a path: `/x`, `./x`, `../x`, `.`, `..`, `~/x`.
fn written_as_path(arg: &str) -> bool {
    arg.starts_with('/')
        || arg.starts_with("./")
        || arg.starts_with("../")
        || arg.starts_with("~/")
        || arg == "."
        || arg == ".."
}

/// Whether the first component of `arg` names a registry host (it has a
/// `.` or a `:`, or is `localhost`, and a `/` follows it), as the
/// reference grammar reads it.
fn names_a_registry(arg: &str) -> bool {
    match arg.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// `LAYOUT[:TAG]` split when the whole is not an existing path: the part
/// after the last `:` (with no `/` in it) is the tag.
/// `FILE[:MEDIATYPE]`: the media type is what follows the last `:` when
/// it has a `/` (a path may hold a `:` too), else `default`.
pub(super) fn file_and_media_type(arg: &str, default: &str) -> (PathBuf, String) {
    match arg.rsplit_once(':') {
        Some((f, t)) if t.contains('/') && !f.is_empty() => (f.into(), t.to_owned()),
        _ => (arg.into(), default.to_owned()),
    }
}

fn split_tag(arg: &str) -> Result<(PathBuf, Option<String>)> {
    if Path::new(arg).exists() {
        return Ok((PathBuf::from(arg), None));
    }
    match arg.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => {
            anyhow::ensure!(
                !tag.is_empty(),
                "{arg:?}: empty tag after ':'; write LAYOUT or LAYOUT:TAG"
            );
            Ok((PathBuf::from(path), Some(tag.to_owned())))
        }
        _ => Ok((PathBuf::from(arg), None)),
    }
}

/// Read a `DIR|REF` argument by one rule, for every command that takes one
/// (docs/registries.md, "Layout or reference?"):
///
/// 1. an existing path, or `LAYOUT:TAG` whose `LAYOUT` exists, is a layout;
/// 2. a path written as one (`/x`, `./x`, `../x`, `~/x`) is a layout, and an
///    error when it does not exist;
/// 3. a name whose first component is a registry host (`ghcr.io/x`,
///    `localhost:5000/x`, `docker.io/library/x`) is a registry reference;
/// 4. anything else (`out`, `team/app:v1`) is an error that names both
///    readings: nothing is sent to Docker Hub for a mistyped directory.
pub fn locate(arg: &str) -> Result<Target> {
    let (dir, tag) = split_tag(arg)?;
    if dir.exists() || written_as_path(arg) {
        return Ok(Target::Layout { dir, tag });
    }
    if names_a_registry(arg) {
        return Ok(Target::Remote(Reference::parse(arg)?));
    }
    let hub = Reference::parse(arg)
        .map(|r| format!(", or write {r} for the image on Docker Hub"))
        .unwrap_or_default();
    anyhow::bail!(
        "no directory {arg:?} is here, and {arg:?} names no registry host: \
         check the layout's path{hub}"
    )
}

/// A `LAYOUT[:TAG]` argument (push, archive, unpack): the layout must exist.
pub fn layout_arg(arg: &str) -> Result<(PathBuf, Option<String>)> {
    let (dir, tag) = split_tag(arg)?;
    if !dir.exists() {
        let hint = if names_a_registry(arg) && Reference::parse(arg).is_ok() {
            " (this looks like an image reference: give the LAYOUT[:TAG] first, then the reference)"
        } else {
            ""
        };
        anyhow::bail!("{}: no such image layout directory{hint}", dir.display());
    }
    Ok((dir, tag))
}

/// A registry reference argument (pull, push's target, tag, exists).
/// Docker's defaults apply (`nginx` is `docker.io/library/nginx:latest`),
/// except to a bare name that is a local path: the user meant the layout.
pub fn reference_arg(arg: &str) -> Result<Reference> {
    reference_arg_as(arg, Reference::parse)
}

/// [`reference_arg`], parsed by `parse` (e.g. without Docker's default
/// tag).
pub fn reference_arg_as(
    arg: &str,
    parse: fn(&str) -> crate::Result<Reference>,
) -> Result<Reference> {
    let r = parse(arg)?;
    if !names_a_registry(arg) && split_tag(arg).is_ok_and(|(dir, _)| dir.exists()) {
        anyhow::bail!(
            "{arg:?} is a local directory, but a registry reference is expected here; \
             for the image on Docker Hub, write {r}"
        );
    }
    Ok(r)
}

/// A `--platform` value, `OS/ARCH[/VARIANT]`, checked while the command
/// line is read: a malformed one is a usage error (exit 2, with the
/// option named), as any malformed option value is. Every command that
/// takes `--platform` uses this.
pub fn platform_arg(text: &str) -> std::result::Result<crate::oci::Platform, String> {
    text.parse().map_err(|e: crate::error::Error| e.to_string())
}

/// An `--artifact-type` value: a media type (`type/subtype`, RFC 6838),
/// checked as `attach` and `artifact push` check the types they write, so
/// that `referrers` refuses what no artifact can have. A usage error
/// (exit 2) when malformed.
pub fn artifact_type_arg(text: &str) -> std::result::Result<String, String> {
    crate::oci::media_type::validate_media_type(text).map(|()| text.to_owned())
}
