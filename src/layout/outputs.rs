//! The one rule every command that writes follows, before it writes
//! anything (docs/reference/safety.md, "Reproducibility and safety"):
//!
//! - an output ([`check_output`]): never in the Nix store; never one of the
//!   command's inputs, nor inside one, nor holding one
//!   ([`check_not_an_input`]); an existing output is replaced only with
//!   `--force`;
//! - a directory changed in place (`sbom --attach` adds to a layout,
//!   `artifact pull` writes into a directory: [`check_may_change`]): never
//!   in the Nix store, and never read-only by its mode, whoever the user is
//!   (root can write anything, so the mode is what says "do not").
//!
//! Only the outputs of the Nix build nixoci runs in are written in the
//! store: `$out` of a derivation whose builder is `nixoci pull`, and what
//! `nixoci nix-builder` writes in place, by code that does not come
//! through here.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Whether the output `dest` may be written by a command whose inputs are
/// `inputs`, replacing what is there only when `force`: it must not be in
/// the Nix store ([`check_outside_store`]), must not delete or change an
/// input ([`check_not_an_input`], checked first, so that `--force` is never
/// suggested where it would not help), and must not exist unless `force`.
pub fn check_output(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<()> {
    if dest.as_os_str().is_empty() {
        return Err(Error::Invalid("the output path is empty".into()));
    }
    if !own_nix_output(dest) {
        check_outside_store(dest)?;
    }
    check_not_an_input(dest, inputs)?;
    if !force && fs::symlink_metadata(dest).is_ok() {
        return Err(Error::OutputExists(dest.to_owned()));
    }
    Ok(())
}

/// Whether the existing directory `dir` may be changed in place (files
/// added, `index.json` replaced): it must not be in the Nix store, and
/// neither it nor, for an image layout, its `index.json`, `blobs`,
/// `blobs/sha256`, nor its referrers' `referrers` and `referrers/index.json`
/// may be read-only by its mode (no write bit for anyone).
pub fn check_may_change(dir: &Path) -> Result<()> {
    // What is changed is what `dir` leads to (a `result` link's target).
    check_outside_store(dir)?;
    if let Ok(real) = fs::canonicalize(dir) {
        check_outside_store(&real).map_err(|_| Error::InNixStore {
            path: dir.to_owned(),
            store: store_of(&real),
        })?;
    }
    let mut parts = vec![dir.to_owned()];
    if dir.join("oci-layout").exists() {
        parts.extend(
            [
                "index.json",
                "blobs",
                "blobs/sha256",
                "referrers",
                "referrers/index.json",
            ]
            .map(|p| dir.join(p)),
        );
    }
    for part in parts {
        // A part may lead into the store on its own (a layout copied with
        // `cp -r`, not `-rL`, keeps `blobs` as a link there): what it leads
        // to is what would change.
        if let Ok(real) = fs::canonicalize(&part) {
            check_outside_store(&real).map_err(|_| Error::InNixStore {
                path: part.clone(),
                store: store_of(&real),
            })?;
        }
        // Through links: a layout's `index.json` may be one.
        if let Ok(m) = fs::metadata(&part) {
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o222 == 0 {
                return Err(Error::ReadOnly {
                    path: dir.to_owned(),
                    part,
                    mode,
                });
            }
        }
    }
    Ok(())
}

/// Whether `dest` is an output of the Nix build this process is part of
/// (`$NIX_BUILD_TOP` is set, and `dest` is the path one of `$outputs`
/// names): what a derivation's builder writes, such as `ociPullImage`'s
/// `nixoci pull REF $out`.
pub(super) fn own_nix_output(dest: &Path) -> bool {
    if std::env::var_os("NIX_BUILD_TOP").is_none() {
        return false;
    }
    let Ok(dest) = std::path::absolute(dest) else {
        return false;
    };
    let names = std::env::var("outputs").unwrap_or_else(|_| "out".into());
    names
        .split_whitespace()
        .filter_map(std::env::var_os)
        .any(|p| Path::new(&p) == dest)
}

/// The Nix store directories: `$NIX_STORE_DIR` (Nix's setting),
/// `$NIX_STORE` (what Nix gives builders) and `/nix/store`, each as named
/// and with its links resolved.
pub(super) fn store_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["NIX_STORE_DIR", "NIX_STORE"]
        .iter()
        .filter_map(std::env::var_os)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .chain([PathBuf::from("/nix/store")])
        .collect();
    let resolved: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| fs::canonicalize(d).ok())
        .collect();
    dirs.extend(resolved);
    dirs
}

/// Refuse `path` when it is in the Nix store, however it is named (through
/// links, relative): the links of its parents are resolved, not one at
/// `path` itself (replacing a `result` link changes no store path).
pub fn check_outside_store(path: &Path) -> Result<()> {
    let real = resolved(path);
    let as_named = std::path::absolute(path)
        .ok()
        .filter(|p| !p.components().any(|c| c == Component::ParentDir));
    for p in [real, as_named].into_iter().flatten() {
        let store = store_of(&p);
        if p.starts_with(&store) {
            return Err(Error::InNixStore {
                path: path.to_owned(),
                store,
            });
        }
    }
    Ok(())
}

/// The store directory `path` is in, or the first one (for a message).
fn store_of(path: &Path) -> PathBuf {
    let dirs = store_dirs();
    dirs.iter()
        .find(|s| path.starts_with(s))
        .unwrap_or(&dirs[0])
        .clone()
}

/// `path` with the links of its longest existing ancestor resolved (the
/// rest, not yet made, appended as named), but not a link at `path` itself
/// (which is what replacing `path` deletes). `None` if nothing of it
/// resolves, or the part not yet made holds `..`.
fn resolved(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut rest = vec![name.to_owned()];
    for a in parent.ancestors() {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        if let Ok(real) = fs::canonicalize(a) {
            let mut out = real;
            for r in rest.iter().rev() {
                if Path::new(r).components().any(|c| c == Component::ParentDir) {
                    return None;
                }
                out.push(r);
            }
            return Some(out);
        }
        rest.push(a.file_name()?.to_owned());
    }
    None
}

/// Refuse to write `dest` when that would delete or change one of
/// `inputs`: an input that is `dest` or lies inside it, or an input
/// directory that `dest` lies inside. Paths are compared as named and once
/// symlinks are resolved (the path itself and what it points to), so a
/// relative, absolute or linked name of an input is the same input. Inputs
/// that do not exist are left to the code that reads them; `-` (standard
/// input) is no file.
pub fn check_not_an_input(dest: &Path, inputs: &[PathBuf]) -> Result<()> {
    // Without a place to compare, nothing could be said: a `..` after a
    // directory not made yet (`L/new/../blobs`) is where the writer's own
    // `create_dir_all` would decide, so it is refused, not waved through.
    let Some(replaced) = resolved(dest) else {
        return Err(Error::Invalid(format!(
            "{}: a '..' follows a directory that does not exist yet, so where the output would go cannot be checked against the inputs: name it without '..'",
            dest.display()
        )));
    };
    for input in inputs {
        if input.as_os_str().is_empty() || input == Path::new("-") {
            continue;
        }
        // The input as named (without `..`, which only resolving can
        // interpret), the input itself, and what it points to.
        let named = std::path::absolute(input)
            .ok()
            .filter(|p| !p.components().any(|c| c == Component::ParentDir));
        let real = [named, resolved(input), fs::canonicalize(input).ok()];
        // The same directory under another name (a bind mount): compared
        // by device and inode, every ancestor of the input's real path.
        if let (Ok(out), Some(canon)) = (fs::symlink_metadata(&replaced), &real[2]) {
            if !out.file_type().is_symlink() {
                let same = |p: &Path, m: &fs::Metadata| {
                    fs::metadata(p).is_ok_and(|x| x.dev() == m.dev() && x.ino() == m.ino())
                };
                if canon.ancestors().any(|a| same(a, &out)) {
                    return Err(Error::InputInOutput {
                        input: input.clone(),
                        output: dest.to_owned(),
                    });
                }
                if let (Ok(inp), Ok(dest_real)) = (fs::metadata(canon), fs::canonicalize(&replaced))
                {
                    if inp.is_dir() && dest_real.ancestors().any(|a| same(a, &inp)) {
                        return Err(Error::OutputInInput {
                            input: input.clone(),
                            output: dest.to_owned(),
                        });
                    }
                }
            }
        }
        for r in real.iter().flatten() {
            if r.starts_with(&replaced) {
                return Err(Error::InputInOutput {
                    input: input.clone(),
                    output: dest.to_owned(),
                });
            }
            if replaced.starts_with(r) && fs::metadata(r).is_ok_and(|m| m.is_dir()) {
                return Err(Error::OutputInInput {
                    input: input.clone(),
                    output: dest.to_owned(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_not_yet_made_inside_an_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("layout");
        fs::create_dir(&input).unwrap();
        let err = check_output(
            &input.join("new/deeper/x"),
            true,
            std::slice::from_ref(&input),
        )
        .unwrap_err();
        assert!(matches!(err, Error::OutputInInput { .. }), "{err}");
        check_output(&dir.path().join("elsewhere/x"), false, &[input]).unwrap();
    }
}
