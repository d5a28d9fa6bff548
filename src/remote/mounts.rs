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
pub(super) fn remember(
    path: Option<&Path>,
    registry: &str,
    repository: &str,
    digests: impl Iterator<Item = Sha256Digest>,
) {
    let Some(path) = path else { return };
    let mut all = load_locations(Some(path));
    let reg = all.entry(registry.to_owned()).or_default();
    for d in digests {
        let repos = reg.entry(d.to_string()).or_default();
        repos.insert(repository.to_owned());
        // Bounded: the most recent few repositories are plenty to mount from.
        while repos.len() > 8 {
            let first = repos.iter().next().cloned().unwrap_or_default();
            repos.remove(&first);
        }
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
        if let Ok(tmp) = tempfile::NamedTempFile::new_in(dir) {
            if std::fs::write(tmp.path(), canonical_json(&all)).is_ok() {
                let _ = tmp.persist(path);
            }
        }
    }
}
