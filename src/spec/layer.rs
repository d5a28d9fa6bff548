//! The layer spec (`nixoci layer`): files, directories, symbolic links,
//! permission rules, users and groups, the closure, and the base image a
//! layer goes on.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::de::{deserialize_mode, from_value_at, objects};
use crate::accounts::{Group, User};
use crate::layer::compress::Compression;

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
    /// onto the base image's files (docs/reference/specs.md, "Layer spec").
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
    /// image's (docs/reference/specs.md, "The Nix database").
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
