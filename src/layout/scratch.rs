//! Scratch space: directories a command works in and removes when done (an
//! extracted base archive, the image `sbom` unpacks, an image `diff` or
//! `prefetch` pulls, the files `artifact pull` unpacks beside its target).
//! They can be as large as an image, so they follow the rules outputs'
//! temporaries follow (docs/reliability.md, "Kill trials"): removed when
//! the work ends, however it ends; removed by the signal handler on SIGINT,
//! SIGTERM and SIGHUP; and named `.nixoci.tmp-PID-HOST-KIND-XXXXXX`, so that the next
//! run making scratch space in the same directory removes those a killed
//! run left ([`crate::layout::remove_stale_temporaries`]).

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::layout::temporaries::{
    remove_stale_temporaries, remove_tree, temporary_prefix, UnfinishedFile,
};

/// The name every scratch directory's name starts from (see
/// [`temporary_prefix`]).
const NAME: &str = "nixoci";

/// The scratch directories of this process (absolute), for [`holds`].
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `path` lies in a scratch directory of this process: what is
/// written there is removed when the work ends, so it is never synced to
/// the disk ([`crate::layout::durable`]); what moves out of one is synced
/// for where it goes.
pub fn holds(path: &Path) -> bool {
    let Ok(path) = std::path::absolute(path) else {
        return false;
    };
    live().iter().any(|s| path.starts_with(s))
}

/// A scratch directory, removed (with whatever it holds, read-only
/// directories included) when dropped or when the process is interrupted.
pub struct Scratch {
    path: PathBuf,
    _tracked: UnfinishedFile,
}

impl Scratch {
    /// A new scratch directory for `kind` of work (`base`, `sbom`, ...) in
    /// the system's temporary directory (`$TMPDIR`, else `/tmp`).
    pub fn new(kind: &str) -> Result<Self> {
        Self::new_in(&std::env::temp_dir(), kind)
    }

    /// A new scratch directory for `kind` of work in `parent`, once the
    /// scratch directories there of runs that died are removed.
    pub fn new_in(parent: &Path, kind: &str) -> Result<Self> {
        remove_stale_temporaries(parent, OsStr::new(NAME));
        let made = tempfile::Builder::new()
            .prefix(&format!("{}{kind}-", temporary_prefix(OsStr::new(NAME))))
            // Tracked before it exists, so that no moment passes when a
            // signal would find it there and untracked.
            .make_in(parent, |path| {
                let tracked = UnfinishedFile::track(path);
                fs::create_dir(path).map(|()| tracked)
            })
            .at(parent)?;
        // Kept: removed by this type's drop, which also copes with
        // read-only directories inside.
        let (tracked, path) = made.keep().map_err(|e| Error::io(parent, e.error))?;
        live().push(std::path::absolute(&path).at(&path)?);
        Ok(Scratch {
            path,
            _tracked: tracked,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Scratch").field(&self.path).finish()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Removed before it is no longer tracked: an interruption in
        // between still finds it.
        remove_tree(&self.path);
        if let Ok(path) = std::path::absolute(&self.path) {
            live().retain(|p| *p != path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn scratch_is_removed_read_only_parts_and_all_and_dead_runs_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let tag = temporary_prefix(OsStr::new(NAME));
        // The prefix of this run, with a PID no process has.
        let dead = tag.replace(
            &format!("-{}-", std::process::id()),
            &format!("-{}-", 2147483646),
        );
        let dead = dir.path().join(format!("{dead}sbom-abc"));
        let alive = dir.path().join(format!("{tag}sbom-def"));
        for d in [&dead, &alive] {
            fs::create_dir_all(d.join("ro/inner")).unwrap();
            fs::write(d.join("ro/inner/f"), b"x").unwrap();
            fs::set_permissions(d.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        }
        let s = Scratch::new_in(dir.path(), "base").unwrap();
        assert!(!dead.exists(), "a dead run's scratch is removed");
        assert!(alive.exists(), "a live run's is kept");
        let name = s.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("{tag}base-")), "{name}");
        fs::create_dir_all(s.path().join("x/y")).unwrap();
        fs::set_permissions(s.path().join("x"), fs::Permissions::from_mode(0o500)).unwrap();
        let path = s.path().to_owned();
        drop(s);
        assert!(!path.exists());
        fs::set_permissions(alive.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }
}
