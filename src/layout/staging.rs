//! Output directories and files: each is written into a temporary sibling
//! of its final path and renamed into place only once complete
//! ([`Staging`], [`OutputFile`]), so a failed or interrupted run never
//! leaves an output that looks finished; what an interrupted run started is
//! removed by [`crate::layout::remove_unfinished`]. Whether an output may be written at
//! all is [`check_output`]'s to say.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::layout::durable;
use crate::layout::outputs::check_output;
use crate::layout::store::BlobDir;
use crate::layout::temporaries::{
    remove_stale_temporaries, rename_exchange, rename_no_replace, temporary_prefix, unfinished,
    UnfinishedFile,
};
use crate::oci::json::canonical_json;

/// The content of `oci-layout`.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An output directory being written: a temporary sibling of `dest` until
/// [`Staging::commit`] (or `dest` itself, for [`Staging::in_place`]).
/// Dropping it without committing removes it.
pub struct Staging {
    place: Place,
    dest: PathBuf,
    force: bool,
    /// The topmost parent directory this run created, removed again if the
    /// output is never committed.
    created_parent: Option<PathBuf>,
    committed: bool,
}

/// How a file output is written ([`OutputFile::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Through a temporary sibling; an existing output is an error.
    New,
    /// Through a temporary sibling; an existing output is replaced
    /// (`--force`), unless that would delete or change an input.
    Replace,
    /// Directly at its path, which must not exist: Nix builders, whose
    /// store directory is not writable and whose failed outputs Nix
    /// discards itself.
    InPlace,
}

impl WriteMode {
    /// [`WriteMode::Replace`] with `--force`, else [`WriteMode::New`].
    pub fn forced(force: bool) -> Self {
        if force {
            WriteMode::Replace
        } else {
            WriteMode::New
        }
    }
}

/// A file output (an archive, an SBOM, a plan): written to a temporary
/// sibling of its final path and renamed into place (mode 0644) by
/// [`OutputFile::commit`]; removed if dropped before, or if the process is
/// interrupted. In place, the final path is written directly.
pub struct OutputFile {
    file: File,
    tmp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
    replace: bool,
    _unfinished: Option<UnfinishedFile>,
}

impl OutputFile {
    /// Start writing `dest`, an output of a command whose inputs are
    /// `inputs`: [`check_output`] says whether it may.
    pub fn new(dest: &Path, mode: WriteMode, inputs: &[PathBuf]) -> Result<Self> {
        if mode == WriteMode::InPlace {
            return Ok(OutputFile {
                file: File::create_new(dest).at(dest)?,
                tmp: None,
                dest: dest.to_owned(),
                replace: false,
                _unfinished: None,
            });
        }
        check_output(dest, mode == WriteMode::Replace, inputs)?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a file name", dest.display())))?;
        remove_stale_temporaries(&parent, name);
        let tmp = tempfile::Builder::new()
            .prefix(&temporary_prefix(name))
            .tempfile_in(&parent)
            .at(&parent)?;
        Ok(OutputFile {
            file: tmp.as_file().try_clone().at(tmp.path())?,
            // The temporary file's own drop does not run when a signal
            // ends the process; the signal handler removes it.
            _unfinished: Some(UnfinishedFile::track(tmp.path())),
            tmp: Some(tmp),
            dest: dest.to_owned(),
            replace: mode == WriteMode::Replace,
        })
    }

    /// The file to write to.
    pub fn file(&self) -> Result<File> {
        self.file.try_clone().at(&self.dest)
    }

    /// Put the finished file at its final path, durably ([`durable`]).
    pub fn commit(self) -> Result<()> {
        match self.tmp {
            Some(t) => {
                t.as_file()
                    .set_permissions(fs::Permissions::from_mode(0o644))
                    .at(t.path())?;
                // Without `replace`, never over an output another run put
                // there meanwhile.
                durable::persist(t, &self.dest, self.replace)
            }
            None if durable::wanted(&self.dest)? => {
                durable::sync_file(&self.file, &self.dest)?;
                durable::sync_dir(&durable::parent_of(&self.dest))
            }
            None => Ok(()),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let path = self.path().to_owned();
        unfinished().retain(|p| *p != path && Some(p) != self.created_parent.as_ref());
        if !self.committed {
            if let Some(p) = &self.created_parent {
                let _ = fs::remove_dir_all(p);
            }
        }
    }
}

enum Place {
    Temp(tempfile::TempDir),
    Final(InPlace),
}

/// A directory written in place: `Some` until committed, removed on drop.
struct InPlace(Option<PathBuf>);

impl Drop for InPlace {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

impl Staging {
    /// Start writing `dest` (with an empty `blobs/sha256`). It must not
    /// exist unless `force`, and replacing it must not touch any of
    /// `inputs` (see [`check_not_an_input`]).
    pub fn new(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<Self> {
        let staging = Self::empty(dest, force, inputs)?;
        fs::create_dir_all(staging.path().join("blobs/sha256")).at(staging.path())?;
        Ok(staging)
    }

    /// Start writing `dest`, an empty directory. It must not exist unless
    /// `force`, and replacing it must not touch any of `inputs`.
    pub fn empty(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<Self> {
        check_output(dest, force, inputs)?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let created_parent = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .last()
            .map(Path::to_owned);
        fs::create_dir_all(&parent).at(&parent)?;
        if let Some(p) = &created_parent {
            unfinished().push(p.clone());
        }
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a directory name", dest.display())))?;
        remove_stale_temporaries(&parent, name);
        let tmp = tempfile::Builder::new()
            .prefix(&temporary_prefix(name))
            .tempdir_in(&parent)
            .at(&parent)?;
        unfinished().push(tmp.path().to_owned());
        let staging = Staging {
            place: Place::Temp(tmp),
            dest: dest.to_owned(),
            force,
            created_parent,
            committed: false,
        };
        Ok(staging)
    }

    /// Write `dest` directly (it must not exist); removed again unless
    /// committed. For Nix builders, whose store directory is not writable
    /// and whose failed outputs Nix discards itself.
    pub fn in_place(dest: &Path) -> Result<Self> {
        if fs::symlink_metadata(dest).is_ok() {
            return Err(Error::OutputExists(dest.to_owned()));
        }
        fs::create_dir(dest).at(dest)?;
        let staging = Staging {
            place: Place::Final(InPlace(Some(dest.to_owned()))),
            dest: dest.to_owned(),
            force: false,
            created_parent: None,
            committed: false,
        };
        fs::create_dir_all(dest.join("blobs/sha256")).at(dest)?;
        Ok(staging)
    }

    /// Where the content is written until commit.
    pub fn path(&self) -> &Path {
        match &self.place {
            Place::Temp(t) => t.path(),
            Place::Final(_) => &self.dest,
        }
    }

    /// The blob store inside. Its blobs are synced one by one; their
    /// directory with the rest at [`Staging::commit`].
    pub fn blobs(&self) -> BlobDir {
        BlobDir::staged(self.path(), &self.dest)
    }

    /// Write a small file (JSON descriptor, `oci-layout`, `index.json`);
    /// it is synced with the rest at [`Staging::commit`].
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path().join(name);
        fs::write(&p, bytes).at(&p)
    }

    /// Sync what the output holds, before its name is given
    /// ([`durable::sync_tree`]).
    fn sync_content(&self) -> Result<bool> {
        let sync = durable::wanted(&self.dest)?;
        if sync {
            durable::sync_tree(self.path())?;
        }
        Ok(sync)
    }

    /// Sync the directory that holds the output's new name, and those
    /// holding the parents this run created for it.
    fn sync_name(&self) -> Result<()> {
        let parent = durable::parent_of(&self.dest);
        durable::sync_dir(&parent)?;
        if let Some(top) = &self.created_parent {
            // Each new directory's name is in the one above it, up to the
            // existing directory that holds `top`.
            for dir in parent.ancestors() {
                if dir.as_os_str().is_empty() {
                    break;
                }
                durable::sync_dir(&durable::parent_of(dir))?;
                if dir == top {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Make the directory an image layout: `oci-layout`, and `index.json`
    /// holding `index` (canonically written).
    pub fn write_layout<T: Serialize>(&self, index: &T) -> Result<()> {
        self.write_file("oci-layout", OCI_LAYOUT)?;
        self.write_file("index.json", &canonical_json(index))
    }

    /// Move the finished directory to its final path, durably: what it
    /// holds is synced before the rename, the directory holding it after
    /// ([`durable`]).
    pub fn commit(mut self) -> Result<PathBuf> {
        let sync = self.sync_content()?;
        let tmp = match std::mem::replace(&mut self.place, Place::Final(InPlace(None))) {
            Place::Final(mut in_place) => {
                if sync {
                    self.sync_name()?;
                }
                in_place.0 = None;
                self.committed = true;
                return Ok(self.dest.clone());
            }
            Place::Temp(tmp) => tmp,
        };
        let tmp_path = tmp.path().to_owned();
        fs::set_permissions(&tmp_path, fs::Permissions::from_mode(0o755)).at(&tmp_path)?;
        let kept = tmp.keep();
        // From here on the rename decides; the parents stay either way.
        self.committed = true;
        let undo = |e: io::Error, path: &Path| {
            let _ = fs::remove_dir_all(&kept);
            Error::io(path, e)
        };
        if self.force && fs::symlink_metadata(&self.dest).is_ok() {
            // Swap, in one step where the file system can: `dest` is
            // always either the old complete output or the new one. The
            // old one, now at the temporary name, is then removed.
            let aside = match rename_exchange(&kept, &self.dest) {
                Ok(()) => kept.clone(),
                Err(_) => {
                    let mut aside = kept.clone().into_os_string();
                    aside.push(".old");
                    let aside = PathBuf::from(aside);
                    fs::rename(&self.dest, &aside).map_err(|e| undo(e, &self.dest))?;
                    fs::rename(&kept, &self.dest).map_err(|e| undo(e, &self.dest))?;
                    aside
                }
            };
            if sync {
                self.sync_name()?;
            }
            let meta = fs::symlink_metadata(&aside).at(&aside)?;
            if meta.is_dir() {
                fs::remove_dir_all(&aside).at(&aside)?;
            } else {
                fs::remove_file(&aside).at(&aside)?;
            }
        } else {
            // Never over an output another run put there meanwhile: of two
            // runs to the same path, one wins and the other fails here.
            match rename_no_replace(&kept, &self.dest) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                    let _ = fs::remove_dir_all(&kept);
                    return Err(Error::OutputExists(self.dest.clone()));
                }
                Err(e) => return Err(undo(e, &self.dest)),
            }
            if sync {
                self.sync_name()?;
            }
        }
        Ok(self.dest.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_is_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        {
            let s = Staging::new(&dest, false, &[]).unwrap();
            s.write_file("x", b"1").unwrap();
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
        let s = Staging::new(&dest, false, &[]).unwrap();
        s.write_file("x", b"1").unwrap();
        s.commit().unwrap();
        assert_eq!(fs::read(dest.join("x")).unwrap(), b"1");
        assert!(matches!(
            Staging::new(&dest, false, &[]),
            Err(Error::OutputExists(_))
        ));
        let s = Staging::new(&dest, true, &[]).unwrap();
        s.write_file("y", b"2").unwrap();
        s.commit().unwrap();
        assert!(!dest.join("x").exists() && dest.join("y").exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no leftovers after --force"
        );
    }

    #[test]
    fn a_commit_never_replaces_an_output_written_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let first = Staging::new(&dest, false, &[]).unwrap();
        let second = Staging::new(&dest, false, &[]).unwrap();
        first.write_file("x", b"first").unwrap();
        second.write_file("x", b"second").unwrap();
        first.commit().unwrap();
        assert!(matches!(second.commit(), Err(Error::OutputExists(_))));
        assert_eq!(fs::read(dest.join("x")).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no leftovers");
        // With force, the swap leaves the new one and nothing else.
        let third = Staging::new(&dest, true, &[]).unwrap();
        third.write_file("x", b"third").unwrap();
        third.commit().unwrap();
        assert_eq!(fs::read(dest.join("x")).unwrap(), b"third");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no leftovers");
    }
}
