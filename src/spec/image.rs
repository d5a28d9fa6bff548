//! The image spec (`nixoci build`, `nixoci manifest`): its layers, built
//! with it or already built, its container config, and the root filesystem
//! settings that make its last layer.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::de::{from_value_at, object, objects};
use super::layer::{DirectorySpec, FileSpec, FromImage, LayerSpec, PermSpec, SymlinkSpec};
use crate::accounts::{Group, User};

/// A layer of an image: built here from a spec, or a directory `nixoci layer`
/// already wrote (given as a string path).
#[derive(Clone, Debug)]
pub enum LayerRef {
    /// The path of a directory `nixoci layer` wrote.
    Dir(PathBuf),
    /// A layer spec, built with the image.
    Inline(Box<LayerSpec>),
}

impl<'de> Deserialize<'de> for LayerRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(LayerRef::Dir(PathBuf::from(s))),
            v @ Value::Object(_) => from_value_at(v)
                .map(|s| LayerRef::Inline(Box::new(s)))
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "a layer is either a layer spec object or the path of a built layer directory",
            )),
        }
    }
}

/// The container-runtime part of the image config (the OCI `config` object),
/// with the field names the OCI image spec uses.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ContainerConfig {
    /// `User`: the user (and group) the process runs as.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `ExposedPorts`: ports the container listens on (`80/tcp`).
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_set"
    )]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `Env`: environment variables, `NAME=VALUE`.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `Entrypoint`: the command run.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`: arguments to the entrypoint (or the command, without one).
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `Volumes`: directories meant as volumes.
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_set"
    )]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// `WorkingDir`: the directory the process starts in.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// `Labels`: metadata of the image config.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `StopSignal`: the signal that stops the container.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
}

/// `ExposedPorts` and `Volumes` are sets, written in OCI JSON as objects with
/// empty values; a plain list is accepted too.
fn deserialize_set<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<BTreeMap<String, Value>>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok((s, Value::Object(Default::default()))),
                other => Err(D::Error::custom(format!(
                    "expected a string, found {other}"
                ))),
            })
            .collect::<std::result::Result<_, _>>()
            .map(Some),
        Some(Value::Object(m)) => Ok(Some(
            m.into_iter()
                .map(|(k, _)| (k, Value::Object(Default::default())))
                .collect(),
        )),
        Some(other) => Err(D::Error::custom(format!(
            "expected a list of strings or an object, found {other}"
        ))),
    }
}

/// A whole image, for `nixoci build` (and `nixoci manifest`, without tags).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImageSpec {
    /// Bottom layer first.
    #[serde(default)]
    pub layers: Vec<LayerRef>,
    /// GOARCH-style architecture (`amd64`, `arm64`, ...). Default: the
    /// building machine's.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Default: `linux`.
    #[serde(default)]
    pub os: Option<String>,
    /// CPU variant (`v8` for `arm64/v8`). Default: none.
    #[serde(default)]
    pub variant: Option<String>,
    /// The config's `author`. Default: none.
    #[serde(default)]
    pub author: Option<String>,
    /// RFC 3339 time. Default: `SOURCE_DATE_EPOCH` if set, else
    /// 1970-01-01T00:00:01Z.
    #[serde(default)]
    pub created: Option<String>,
    /// The container-runtime settings (the OCI `config` object).
    #[serde(default, deserialize_with = "object")]
    pub config: ContainerConfig,
    /// Merged (recursively for objects) into the config document last: any
    /// OCI config field nixoci has no dedicated setting for.
    #[serde(default)]
    pub extra_config: Option<crate::oci::json::JsonObject>,
    /// A directory written by `nixoci config`: its config and layers are
    /// used, and the settings above (layers, platform, config) must be unset.
    #[serde(default)]
    pub image_config: Option<PathBuf>,
    /// Manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Merged into the manifest document last (e.g. `artifactType`,
    /// `subject`); may not set `schemaVersion`, `mediaType`, `config` or
    /// `layers`.
    #[serde(default)]
    pub extra_manifest: Option<crate::oci::json::JsonObject>,
    /// Tags (`org.opencontainers.image.ref.name`). Default: `["latest"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The image this one is built on: its layers first, byte for byte, its
    /// config inherited (see docs/base-images.md).
    #[serde(default)]
    pub from_image: Option<FromImage>,
    /// The root filesystem settings below, when any is given, make one
    /// more layer, the image's last, as an inline layer with the same
    /// fields would ([`ImageSpec::rootfs_layer`]).
    #[serde(default, deserialize_with = "objects")]
    pub users: Vec<User>,
    /// See [`LayerSpec::groups`].
    #[serde(default, deserialize_with = "objects")]
    pub groups: Vec<Group>,
    /// See [`LayerSpec::directories`].
    #[serde(default, deserialize_with = "objects")]
    pub directories: Vec<DirectorySpec>,
    /// See [`LayerSpec::symlinks`].
    #[serde(default, deserialize_with = "objects")]
    pub symlinks: Vec<SymlinkSpec>,
    /// Files of the last layer (inline `text` or a `source`), as in a layer.
    #[serde(default, deserialize_with = "objects")]
    pub files: Vec<FileSpec>,
    /// See [`LayerSpec::perms`]: rules on the entries of the last layer.
    #[serde(default, deserialize_with = "objects")]
    pub perms: Vec<PermSpec>,
    /// See [`LayerSpec::tmp`] (default false here; `ociImage` says true).
    #[serde(default)]
    pub tmp: bool,
    /// See [`LayerSpec::nix_database`].
    #[serde(default)]
    pub nix_database: bool,
    /// See [`LayerSpec::nix_uid`].
    #[serde(default)]
    pub nix_uid: Option<u32>,
    /// See [`LayerSpec::nix_gid`].
    #[serde(default)]
    pub nix_gid: Option<u32>,
}

impl ImageSpec {
    /// The image's last layer made of its root filesystem settings
    /// (`users`, `groups`, `directories`, `symlinks`, `files`, `perms`,
    /// `tmp`, `nixDatabase`), when any is given; compressed as the image's
    /// last inline layer is (gzip when it has none).
    pub fn rootfs_layer(&self) -> Option<LayerSpec> {
        let any = !self.users.is_empty()
            || !self.groups.is_empty()
            || !self.directories.is_empty()
            || !self.symlinks.is_empty()
            || !self.files.is_empty()
            || !self.perms.is_empty()
            || self.tmp
            || self.nix_database
            || self.nix_uid.is_some()
            || self.nix_gid.is_some();
        if !any {
            return None;
        }
        let last_inline = self.layers.iter().rev().find_map(|l| match l {
            LayerRef::Inline(l) => Some(l),
            LayerRef::Dir(_) => None,
        });
        Some(LayerSpec {
            users: self.users.clone(),
            groups: self.groups.clone(),
            directories: self.directories.clone(),
            symlinks: self.symlinks.clone(),
            files: self.files.clone(),
            perms: self.perms.clone(),
            tmp: self.tmp,
            nix_database: self.nix_database,
            nix_uid: self.nix_uid,
            nix_gid: self.nix_gid,
            compression: last_inline.map(|l| l.compression).unwrap_or_default(),
            level: last_inline.and_then(|l| l.level),
            ..Default::default()
        })
    }

    /// The config-shaping fields that are set (they conflict with
    /// `imageConfig`).
    pub(crate) fn config_settings(&self) -> Vec<&'static str> {
        let c = &self.config;
        let config_set = c.user.is_some()
            || c.exposed_ports.is_some()
            || c.env.is_some()
            || c.entrypoint.is_some()
            || c.cmd.is_some()
            || c.volumes.is_some()
            || c.working_dir.is_some()
            || c.labels.is_some()
            || c.stop_signal.is_some();
        [
            ("layers", !self.layers.is_empty()),
            ("architecture", self.architecture.is_some()),
            ("os", self.os.is_some()),
            ("variant", self.variant.is_some()),
            ("author", self.author.is_some()),
            ("created", self.created.is_some()),
            ("config", config_set),
            ("extraConfig", self.extra_config.is_some()),
            ("users", !self.users.is_empty()),
            ("groups", !self.groups.is_empty()),
            ("directories", !self.directories.is_empty()),
            ("symlinks", !self.symlinks.is_empty()),
            ("files", !self.files.is_empty()),
            ("perms", !self.perms.is_empty()),
            ("tmp", self.tmp),
            ("nixDatabase", self.nix_database),
            ("nixUid", self.nix_uid.is_some()),
            ("nixGid", self.nix_gid.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}
