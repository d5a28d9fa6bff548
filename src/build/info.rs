//! What each building block writes beside its blobs for the next step to
//! read: `layer.json`, `layers.json`, `config.json`, `manifest.json`, and
//! the report of a layout.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::oci::descriptor::{Descriptor, Platform};
use crate::oci::digest::Sha256Digest;
use crate::oci::json::{canonical_json_with, read_json, Json};
use crate::oci::MediaType;
use crate::spec;

/// File name of a layer directory's descriptor.
pub const LAYER_JSON: &str = "layer.json";

/// File name of a multi-layer directory's descriptor (`nixoci layers`).
pub const LAYERS_JSON: &str = "layers.json";

/// File name of a config directory's descriptor.
pub const CONFIG_JSON: &str = "config.json";

/// File name of a manifest directory's descriptor.
pub const MANIFEST_JSON: &str = "manifest.json";

/// A built layer: its descriptor, diff_id and the store paths it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayerInfo {
    /// The layer media type (gzip, zstd or uncompressed tar).
    pub media_type: MediaType,
    /// The digest of the layer blob, as stored.
    pub digest: Sha256Digest,
    /// The size of the layer blob in bytes.
    pub size: u64,
    /// The digest of the uncompressed tar stream (the config's `diff_ids`).
    pub diff_id: Sha256Digest,
    /// The Nix store paths the layer holds.
    pub store_paths: BTreeSet<PathBuf>,
    /// The users and groups of the `/etc/passwd` and `/etc/group` the
    /// layer places, for the check of `config.User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<LayerAccounts>,
}

/// A user a layer's `/etc/passwd` defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserName {
    /// The line's first field.
    pub name: String,
    /// Absent when the line's uid is not a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u64>,
}

/// A group a layer's `/etc/group` defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupName {
    /// The line's first field.
    pub name: String,
    /// Absent when the line's gid is not a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u64>,
}

/// The accounts a layer defines (`layer.json`'s `accounts`): the users
/// of the `/etc/passwd` it places, the groups of its `/etc/group`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerAccounts {
    /// The users, in the file's order; absent without `/etc/passwd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserName>>,
    /// The groups, in the file's order; absent without `/etc/group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupName>>,
}

impl LayerInfo {
    pub(super) fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
            annotations: Default::default(),
            artifact_type: None,
        }
    }
}

/// Several layers built at once (`nixoci layers`): each layer, in order,
/// and the plan that grouped their store paths, as it was given.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayersInfo {
    pub layers: Vec<LayerInfo>,
    pub plan: Json,
}

/// The layers a layer directory holds: one (`layer.json`, from `nixoci
/// layer`), or several in order (`layers.json`, from `nixoci layers`).
pub fn read_layer_dir(dir: &Path) -> Result<Vec<LayerInfo>> {
    let many = dir.join(LAYERS_JSON);
    if !dir.join(LAYER_JSON).exists() && many.exists() {
        let info: LayersInfo = read_json(&many)?;
        return Ok(info.layers);
    }
    Ok(vec![read_json(&dir.join(LAYER_JSON))?])
}

/// The store paths the layer directories `dirs` (relative to `base`) hold:
/// what a layer built over them leaves out.
pub fn base_store_paths(base: &Path, dirs: &[PathBuf]) -> Result<BTreeSet<PathBuf>> {
    let mut paths = BTreeSet::new();
    for dir in dirs {
        let dir = spec::resolve(base, dir);
        for info in
            read_layer_dir(&dir).map_err(|e| e.within(format!("base layer {}", dir.display())))?
        {
            paths.extend(info.store_paths);
        }
    }
    Ok(paths)
}

/// A built image config: its descriptor, platform, the layers it describes
/// and the directories holding their blobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigInfo {
    pub media_type: MediaType,
    pub digest: Sha256Digest,
    pub size: u64,
    pub platform: Platform,
    pub layers: Vec<LayerInfo>,
    /// Directories (besides the config's own) whose `blobs/sha256` hold
    /// layer blobs.
    #[serde(default)]
    pub blob_dirs: Vec<PathBuf>,
    /// The base image (`fromImage`), for the manifest's annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

/// What the manifest records of the base (`config.json`'s `base`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BaseRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The base's manifest (none for a docker archive, which has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Sha256Digest>,
}

/// A built image manifest: its descriptor with platform, the config and
/// layers it references, and the directories holding the layer blobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct ManifestInfo {
    /// The manifest media type.
    pub media_type: MediaType,
    /// The digest of the manifest blob.
    pub digest: Sha256Digest,
    /// The size of the manifest blob in bytes.
    pub size: u64,
    /// The platform of the image, from its config.
    pub platform: Platform,
    /// The descriptor of the image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// Directories (besides the manifest's own) whose `blobs/sha256` hold
    /// layer blobs.
    #[serde(default)]
    pub blob_dirs: Vec<PathBuf>,
}

/// What a finished layout holds, for reports.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayoutReport {
    /// The layout directory written.
    pub layout: PathBuf,
    /// The tags that name the image in `index.json`.
    pub tags: Vec<String>,
    /// The descriptor the tags point at (a manifest, or an index).
    pub descriptor: Descriptor,
    /// Each image of the layout (one per platform).
    pub manifests: Vec<ManifestInfo>,
}

/// The bytes of a building block's `layer.json`, `layers.json`,
/// `config.json` or `manifest.json`: canonical JSON, except that each store
/// path of a `storePaths` list (and of a plan's `paths`) is written so that
/// Nix's reference scanner does not find it ([`crate::nix::write_unscanned_path`]). An output then does not
/// reference the store paths its layers pack, only the directories it
/// reads blobs from (`blobDirs`, written as they are).
pub(super) fn info_json<T: Serialize>(info: &T) -> Vec<u8> {
    canonical_json_with(
        info,
        &["storePaths", "paths"],
        &crate::nix::write_unscanned_path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::json::canonical_json;

    /// The info files hide the hashes of `storePaths` only: they read back
    /// as the plain canonical JSON does, the store paths' hashes are not in
    /// their bytes, `blobDirs` (which must stay references) is written as
    /// it is, and undoing the escapes gives the canonical JSON byte for byte.
    #[test]
    fn info_json_hides_only_the_store_paths() {
        let app = "/nix/store/0c2kvl9a1jfnv7krcvsj5gj3i95162zl-app";
        let dep = "/nix/store/yhkq1r9p9bl3hrww5wi8g4w6qqyf5j1m-dep";
        let layer_dir = "/nix/store/2kvl9a1jfnv7krcvsj5gj3i95162zlfg-oci-layer";
        let digest: Sha256Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let layer = LayerInfo {
            media_type: MediaType::LAYER_GZIP,
            digest: digest.clone(),
            size: 12,
            diff_id: digest.clone(),
            store_paths: [app, dep].into_iter().map(PathBuf::from).collect(),
            accounts: None,
        };
        let config = ConfigInfo {
            media_type: MediaType::CONFIG,
            digest,
            size: 34,
            platform: "linux/amd64".parse().unwrap(),
            layers: vec![layer.clone(), layer.clone()],
            blob_dirs: vec![PathBuf::from(layer_dir)],
            base: None,
        };
        let check = |bytes: Vec<u8>, plain: Vec<u8>, count: usize| {
            let text = String::from_utf8(bytes).unwrap();
            let read: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                read,
                serde_json::from_slice::<serde_json::Value>(&plain).unwrap()
            );
            for p in [app, dep] {
                let hash = &p["/nix/store/".len()..][..32];
                assert!(!text.contains(hash), "{hash} in {text}");
            }
            assert_eq!(text.matches(layer_dir).count(), count, "{text}");
            let undone = text
                .replace("\\u006c-app", "l-app")
                .replace("\\u006d-dep", "m-dep");
            assert_eq!(undone.as_bytes(), plain, "{text}");
        };
        check(info_json(&layer), canonical_json(&layer), 0);
        check(info_json(&config), canonical_json(&config), 1);
        // A layers directory records the plan's `paths` too.
        let plan = serde_json::json!({"layers": [{"paths": [app, dep], "why": "test"}]});
        let layers = LayersInfo {
            layers: vec![layer],
            plan: Json::from_value(&plan),
        };
        check(info_json(&layers), canonical_json(&layers), 0);
    }
}
