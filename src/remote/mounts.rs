//! The blob-location cache, for cross-repository mounts: which
//! repositories of which registry are known to hold which blobs, kept in a
//! JSON file ([`super::RemoteOptions::blob_cache`]). Pushes and pulls add to
//! it; a push mounts from it before it uploads. Best effort: a cache that
//! cannot be read or written costs a mount, never a push.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::oci::digest::Sha256Digest;
use crate::oci::json::canonical_json;

pub(super) type Locations = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

pub(super) fn load_locations(path: Option<&Path>) -> Locations {
    path.and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Remember that `repository` of `registry` holds `digests` (best effort:
/// a cache that cannot be written only costs a future mount).
///
/// Concurrent processes (parallel pushes in CI) each add what they learnt:
/// the read, the change and the write happen under an exclusive lock on
/// `PATH.lock`, and the file is replaced in one step (a temporary sibling
/// renamed over it), so no reader sees half a file and no writer loses
/// another's entries.
pub(super) fn remember(
    path: Option<&Path>,
    registry: &str,
    repository: &str,
    digests: impl Iterator<Item = Sha256Digest>,
) {
    let Some(path) = path else { return };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let _ = std::fs::create_dir_all(dir);
    let mut lock_name = name.to_owned();
    lock_name.push(".lock");
    let Ok(lock) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(lock_name))
    else {
        return;
    };
    // SAFETY: flock on a descriptor this function owns; released when
    // `lock` is closed, at the end of the function.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return;
    }
    let mut all = load_locations(Some(path));
    let reg = all.entry(registry.to_owned()).or_default();
    for d in digests {
        let repos = reg.entry(d.to_string()).or_default();
        repos.insert(repository.to_owned());
        // Bounded: a few repositories are plenty to mount from.
        while repos.len() > 8 {
            let first = repos.iter().next().cloned().unwrap_or_default();
            repos.remove(&first);
        }
    }
    crate::layout::remove_stale_temporaries(dir, name);
    if let Ok(tmp) = tempfile::Builder::new()
        .prefix(&crate::layout::temporary_prefix(name))
        .tempfile_in(dir)
    {
        if std::fs::write(tmp.path(), canonical_json(&all)).is_ok() {
            let _ = crate::layout::durable::persist(tmp, path, true);
        }
    }
}
