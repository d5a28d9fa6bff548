//! The JSON input model: what a layer, an image and a layout are made of.
//!
//! Every struct refuses unknown fields, so a typo is an error, not a silently
//! ignored setting. Relative paths in a spec are relative to the directory of
//! the spec file, so a spec means the same thing from any working directory.
//!
//! Part of the library's API: a program reads a spec with [`load`], or
//! makes one from JSON (`serde_json::from_value`) or from `Default` and
//! its fields (the structs are `#[non_exhaustive]`: fields may be added).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use crate::accounts::{Group, User};
use crate::error::{IoContext, Result};
pub use crate::layer::compress::Compression;
use crate::oci::json::{at_path, parse_json};
use crate::oci::reference::validate_tag;

/// What goes into one layer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayerSpec {
    /// Files, directories and symlinks to put into the layer.
    #[serde(default, deserialize_with = "objects")]
    pub files: Vec<FileSpec>,
    /// Directories made with the mode and owner given (`/tmp` 1777).
    #[serde(default, deserialize_with = "objects")]
    pub directories: Vec<DirectorySpec>,
    /// Symbolic links; a target in the Nix store brings that store path.
    #[serde(default, deserialize_with = "objects")]
    pub symlinks: Vec<SymlinkSpec>,
    /// Rules setting mode and owner on entries already placed.
    #[serde(default, deserialize_with = "objects")]
    pub perms: Vec<PermSpec>,
    /// Users: `/etc/passwd`, `/etc/shadow` (and their groups), merged
    /// onto the base image's files (README, "Layer spec").
    #[serde(default, deserialize_with = "objects")]
    pub users: Vec<User>,
    /// Groups: `/etc/group`, merged onto the base image's file.
    #[serde(default, deserialize_with = "objects")]
    pub groups: Vec<Group>,
    /// Make `/tmp` with mode 1777 unless the base image or this layer has
    /// one (default: false; `ociImage` passes true unless `tmp = false`).
    #[serde(default)]
    pub tmp: bool,
    /// Write a Nix database (`/nix/var/nix/db`) registering every store
    /// path of the image: this layer's, its `base` layers' and the base
    /// image's (README, "The Nix database").
    #[serde(default)]
    pub nix_database: bool,
    /// With `nixDatabase`: the owner of `/nix` and the database (default 0).
    #[serde(default)]
    pub nix_uid: Option<u32>,
    /// With `nixDatabase`: the group of `/nix` and the database (default 0).
    #[serde(default)]
    pub nix_gid: Option<u32>,
    /// How the tar stream is compressed.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[serde(default)]
    pub level: Option<u32>,
    /// Store paths added at their own path (typically a runtime closure).
    #[serde(default)]
    pub closure: Option<ClosureSpec>,
    /// Built layer directories whose store paths this layer leaves out.
    #[serde(default)]
    pub base: Vec<PathBuf>,
    /// Absolute paths of the layers below to delete, with OCI whiteouts.
    /// Onto a base image (`fromImage`), each must be there.
    #[serde(default)]
    pub remove: Vec<String>,
    /// The base image this layer goes on: with `"symlinks": "follow"`,
    /// its paths are placed through the base's symbolic links (`/bin/x`
    /// into `/usr/bin/x` when the base has `/bin -> usr/bin`), and the
    /// store paths it holds are left out.
    #[serde(default)]
    pub from_image: Option<FromImage>,
}

/// A base image (`fromImage`): an OCI image layout directory, or an
/// archive (a `docker save` / dockerTools tarball, gzipped or not, or an
/// OCI archive). Written as its path alone, or as an object.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FromImage {
    /// The image layout directory or archive file (relative to the spec's directory).
    pub path: PathBuf,
    /// Which image of the layout or archive, when it holds several.
    pub tag: Option<String>,
    /// The reference recorded as `org.opencontainers.image.base.name`
    /// (default: none for a layout, the archive's first `RepoTags` for a
    /// docker archive).
    pub name: Option<String>,
    /// What a layer over the base does where the base has a symbolic link
    /// on the way: refuse (default), or follow it.
    pub symlinks: BaseSymlinks,
    /// From a multi-platform base, which image (`OS/ARCH[/VARIANT]`) a
    /// layer step takes (an image spec takes its own platform; default:
    /// this machine's Linux).
    pub platform: Option<String>,
}

/// See [`FromImage::symlinks`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseSymlinks {
    /// Refuse to place anything through a symbolic link of the base.
    #[default]
    Error,
    /// Follow the link, as a container would (usr-merge links: `/bin -> usr/bin`).
    Follow,
}

impl<'de> Deserialize<'de> for FromImage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            path: PathBuf,
            #[serde(default)]
            tag: Option<String>,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            symlinks: BaseSymlinks,
            #[serde(default)]
            platform: Option<String>,
        }
        match Value::deserialize(d)? {
            Value::String(s) => Ok(FromImage {
                path: PathBuf::from(s),
                ..Default::default()
            }),
            v @ Value::Object(_) => {
                let f: Full = from_value_at(v).map_err(D::Error::custom)?;
                Ok(FromImage {
                    path: f.path,
                    tag: f.tag,
                    name: f.name,
                    symlinks: f.symlinks,
                    platform: f.platform,
                })
            }
            _ => Err(D::Error::custom(
                "fromImage is the path of an image layout or archive, or {\"path\", \"tag\", \"name\", \"symlinks\"}",
            )),
        }
    }
}

/// See [`LayersSpec::budget_includes_base`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BudgetRule {
    /// The layers of the base count towards `maxLayers`.
    Strict,
    /// As `Strict`, but at least one layer is left for the closure.
    AtLeastOne,
}

/// Several layers at once (`nixoci layers`): one for each group of store
/// paths of a plan, given (`plan`, written by `nixoci plan`) or made here
/// from a closure graph (`graph`, with `maxLayers`, `strategy`, `base`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayersSpec {
    /// The plan: a JSON file whose `layers` each list the store `paths` of
    /// one layer (the layers come out in its order).
    #[serde(default)]
    pub plan: Option<PathBuf>,
    /// Or the closure graph to plan (`exportReferencesGraph` with
    /// structured attrs): a file, and the attribute holding the list.
    #[serde(default)]
    pub graph: Option<GraphSpec>,
    /// With `graph`: the most layers (1 to 127, default 100).
    #[serde(default)]
    pub max_layers: Option<usize>,
    /// With `graph`: `stable` (default) or `popularity`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// With `graph`: built layer directories whose store paths are left out.
    #[serde(default)]
    pub base: Vec<PathBuf>,
    /// With `graph`: a base image whose store paths are left out too.
    #[serde(default)]
    pub from_image: Option<FromImage>,
    /// With `fromImage`: `maxLayers` counts the base image's layers too
    /// (how `ociImage` keeps its whole image within its budget); `strict`
    /// fails when they leave none for the closure, `atLeastOne` then puts
    /// the closure in one layer.
    #[serde(default)]
    pub budget_includes_base: Option<BudgetRule>,
    /// With `graph`: store paths the image only copies files from (to
    /// destinations elsewhere; `ociImage` passes them): left out, their
    /// references kept, unless they or another path of the graph refer to
    /// them (`nix::copied_only`).
    #[serde(default)]
    pub copied: Vec<PathBuf>,
    /// Rules setting mode and owner on entries of the layers, as a layer
    /// spec's `perms` do: each applies to every layer, and must match an
    /// entry in at least one of them.
    #[serde(default, deserialize_with = "objects")]
    pub perms: Vec<PermSpec>,
    /// How every layer's tar stream is compressed.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[serde(default)]
    pub level: Option<u32>,
}

/// A closure graph file, and the attribute of it holding the list (none: the
/// file is the list).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GraphSpec {
    /// The file Nix wrote (`exportReferencesGraph`, or `.attrs.json`).
    pub file: PathBuf,
    /// The attribute of the file that holds the list (none: the file is the list).
    #[serde(default)]
    pub attr: Option<String>,
}

/// One source and where it lands.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileSpec {
    /// A file, directory or symlink on the building machine (or `text`).
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// The file's content, written inline instead of a `source` (then
    /// `destination` is required).
    #[serde(default)]
    pub text: Option<String>,
    /// Absolute path in the image. A trailing `/` puts a file or symlink
    /// inside that directory under its own name. Absent: the source's own
    /// (absolute) path.
    #[serde(default)]
    pub destination: Option<String>,
    /// Permission bits, as an octal string like `"0755"`.
    #[serde(default, deserialize_with = "deserialize_mode")]
    pub mode: Option<u32>,
    /// Owner id (default: 0).
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group id (default: 0).
    #[serde(default)]
    pub gid: Option<u32>,
    /// Put symbolic links to the source's files (absolute, into the Nix
    /// store) instead of copies: directories are made, every file and
    /// symlink under the source becomes a link to it. The source must be in
    /// the store, whose path the image then holds (its closure).
    #[serde(default)]
    pub link: bool,
    /// How messages name this entry instead of `files[N]`: the Nix
    /// functions write the argument it came from (`ociImage: contents[0]`),
    /// whose index may differ from its place in this list.
    #[serde(default)]
    pub label: Option<String>,
}

/// A directory made with the mode and owner given, whatever else places it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DirectorySpec {
    /// Absolute path in the image.
    pub path: String,
    /// Permission bits, as an octal string (`"1777"`; default `"0755"`);
    /// setuid, setgid and sticky bits are kept.
    #[serde(default, deserialize_with = "deserialize_mode")]
    pub mode: Option<u32>,
    /// Owner id (default: 0).
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group id (default: 0).
    #[serde(default)]
    pub gid: Option<u32>,
}

/// A symbolic link made at `path`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SymlinkSpec {
    /// Absolute path of the link in the image.
    pub path: String,
    /// What it points to, byte for byte (relative targets are kept as
    /// written). A target in the Nix store puts its store path into the
    /// layer, at its own path.
    pub target: String,
}

/// A rule setting the mode and owner of entries the layer places.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PermSpec {
    /// The entries considered: this absolute path and everything under it.
    pub path: String,
    /// Matched, anchored at both ends, against each entry's full path in
    /// the image (`/nix/store/…-app/var`).
    pub regex: String,
    /// Permission bits, as an octal string.
    #[serde(default, deserialize_with = "deserialize_mode")]
    pub mode: Option<u32>,
    /// Owner id.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group id.
    #[serde(default)]
    pub gid: Option<u32>,
}

/// Store paths to include, as a list or as a file Nix wrote.
#[derive(Clone, Debug)]
pub enum ClosureSpec {
    /// Store paths, each added at its own path.
    Paths(Vec<PathBuf>),
    /// An `exportReferencesGraph` file, or a structured-attrs `.attrs.json`
    /// whose attribute `attr` lists `{path, ...}` objects.
    File {
        /// The file.
        file: PathBuf,
        /// The attribute holding the list (none: the file is the list).
        attr: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosureFile {
    file: PathBuf,
    #[serde(default)]
    attr: Option<String>,
}

impl<'de> Deserialize<'de> for ClosureSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            v @ Value::Array(_) => serde_json::from_value(v)
                .map(ClosureSpec::Paths)
                .map_err(D::Error::custom),
            v @ Value::Object(_) => {
                let f: ClosureFile = serde_json::from_value(v).map_err(D::Error::custom)?;
                Ok(ClosureSpec::File {
                    file: f.file,
                    attr: f.attr,
                })
            }
            _ => Err(D::Error::custom(
                "closure must be a list of store paths or {\"file\": PATH, \"attr\"?: NAME}",
            )),
        }
    }
}

fn deserialize_mode<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    let v = Option::<Value>::deserialize(d)?;
    let mode = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
        {
            u32::from_str_radix(&s, 8).map_err(D::Error::custom)?
        }
        // A JSON number would be decimal: 755 would mean 0o1363. Refused
        // rather than guessed.
        Some(other) => {
            return Err(D::Error::custom(format!(
                "mode must be an octal string like \"0755\", not {other}"
            )))
        }
    };
    if mode > 0o7777 {
        return Err(D::Error::custom(format!(
            "mode {mode:o} (octal) has bits beyond 07777"
        )));
    }
    Ok(Some(mode))
}

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
    /// config inherited (see the README, "Base images").
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

/// A layout from built manifest directories, for `nixoci layout`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct LayoutSpec {
    /// Directories written by `nixoci manifest`. One: the tags name that
    /// manifest. Several (one per platform): the tags name an image index
    /// over them.
    pub manifests: Vec<PathBuf>,
    /// Default: `["latest"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Annotations of the image index (several manifests), or of
    /// `index.json` (one manifest).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Merged into `index.json` last (e.g. its `annotations`).
    #[serde(default)]
    pub extra_index: Option<crate::oci::json::JsonObject>,
    /// With several manifests, also name each one `TAG-OS-ARCH[-VARIANT]`
    /// in `index.json`, for tools that cannot choose a platform from an
    /// index (umoci 0.4).
    #[serde(default)]
    pub platform_tags: bool,
    /// SBOM formats (`spdx`, `cyclonedx`) to attach to each image of the
    /// layout, as referrers (`nixoci sbom --attach`).
    #[serde(default)]
    pub sbom: Vec<String>,
}

/// A struct from a JSON object only: serde would also take a positional
/// array, which would get around the refusal of unknown fields.
fn object<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> std::result::Result<T, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(d)? {
        v @ Value::Object(_) => from_value_at(v).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected an object, found {other}"
        ))),
    }
}

/// `T` from a JSON value; an error leads with the path of the field at
/// fault inside it (`files[0].uid: invalid type ...`).
fn from_value_at<T: serde::de::DeserializeOwned>(v: Value) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        at_path(&at, &e.into_inner().to_string())
    })
}

/// The `files` list, each entry from a JSON object only (see [`object`]).
fn objects<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    use serde::de::Error as _;
    let items = Vec::<Value>::deserialize(d)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            v @ Value::Object(_) => {
                from_value_at(v).map_err(|e| D::Error::custom(format!("[{i}].{e}")))
            }
            other => Err(D::Error::custom(format!(
                "[{i}]: expected an object, found {other}"
            ))),
        })
        .collect()
}

/// Read and parse a JSON spec file (`-`: standard input).
pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).at("(standard input)")?;
        b
    } else {
        crate::oci::json::read_regular(path)?
    };
    parse_json(path, &bytes)
}

/// The directory relative paths in the spec at `spec_path` are resolved
/// against (the working directory for a spec read from standard input).
pub(crate) fn base_dir(spec_path: &Path) -> PathBuf {
    if spec_path == Path::new("-") {
        return PathBuf::from(".");
    }
    match spec_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `path` if absolute, else `base/path`; `path` as written when `base` is
/// `.` (a spec in the working directory), so that messages name it as
/// the user wrote it, not as `./path`.
pub(crate) fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() || base == Path::new(".") {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// The tags to write: the given ones (validated, duplicates dropped, order
/// kept) or `latest`.
pub(crate) fn tags_or_default(tags: &[String]) -> Result<Vec<String>> {
    if tags.is_empty() {
        return Ok(vec!["latest".to_owned()]);
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        validate_tag(t)?;
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
