//! nixoci: reproducible OCI image layouts from JSON descriptions of files and
//! Nix store paths. Same inputs, same bytes, on every machine.
//!
//! # The library
//!
//! What other Rust programs may use, and what later versions keep
//! (docs/library.md, "Using nixoci as a library", says the same):
//!
//! - building an image layout from an image spec: [`build()`], with
//!   [`BuildOptions`], giving a [`LayoutReport`]; the spec is the JSON
//!   input model of [`spec`] (read one with [`spec::load`]);
//! - checking a layout: [`verify()`] (or [`verify_with`] and its
//!   [`Limits`]), giving a [`VerifyReport`];
//! - registries: [`push()`] and [`pull()`] (with [`PullOptions`]), with
//!   [`RemoteOptions`] and [`Credentials`], giving a [`PushReport`] or a
//!   [`PullReport`];
//! - the OCI vocabulary: [`oci`] ([`Descriptor`](oci::Descriptor),
//!   [`Platform`](oci::Platform), [`MediaType`](oci::MediaType),
//!   [`Sha256Digest`](oci::Sha256Digest), [`Reference`](oci::Reference));
//! - [`Error`] and [`Result`], and [`progress`] to follow long operations.
//!
//! Options structs ([`BuildOptions`], [`Limits`], [`PullOptions`],
//! [`RemoteOptions`]) are
//! `#[non_exhaustive]`: start from `Default` and set fields, so that a
//! later version can add one. Everything else is the
//! command line's machinery, private to the crate. The `cli`, `fuzz` and
//! `test_support` modules are public only for the `nixoci` binary, the
//! fuzz targets and the integration tests: they are hidden from the
//! documentation and may change in any release.
//!
//! ```no_run
//! # fn main() -> nixoci::Result<()> {
//! use std::path::Path;
//!
//! let spec_path = Path::new("image.json");
//! let spec: nixoci::spec::ImageSpec = nixoci::spec::load(spec_path)?;
//! let report = nixoci::build(&spec, spec_path, Path::new("out"), &Default::default())?;
//! let checked = nixoci::verify(&report.layout);
//! assert!(checked.ok, "{:?}", checked.problems);
//! # Ok(())
//! # }
//! ```
//!
//! # Inside
//!
//! The data path runs one way: a spec (`spec`) is resolved into a sorted
//! tree (`layer::tree`), streamed as a deterministic tar (`layer::tar`)
//! through a compressor (`layer::compress`) into a blob (`layout::store`);
//! its descriptor ([`oci::descriptor`]) goes into the config, manifest and
//! index documents (`documents`) of an OCI image layout (`layout`), which
//! `build` assembles and `remote` pushes.
//!
//! The modules come in layers, each importing only from its own layer or
//! those listed before it (ARCHITECTURE.md's code map has them;
//! `tests/layering.rs` enforces it):
//!
//! 1. ground floor: `error`, `progress`, `oci`;
//! 2. the layer write path: `layer`;
//! 3. input: `spec`, `nix`, `nar` (the Nix archive hash of a tree),
//!    `nixdb` (a Nix database of store paths, reproducible),
//!    `accounts` (users and groups: `/etc/passwd` and friends),
//!    `rootfs` (an unpacked image's tree, read as a container sees it),
//!    `plan` (automatic layering: which store paths go into which layer);
//! 4. documents: `documents`;
//! 5. layouts: `layout` (store, reader, tags);
//! 6. commands: `build` (with `base`: base images), `verify`, `inspect`,
//!    `archive`, `unpack` (with `untar`, `artifact`), `diff`, `sbom`,
//!    `referrers` (artifacts attached to images), `sign` (signatures
//!    cosign accepts), `fuzz` (the fuzzing entry points);
//! 7. the network: `remote`, the only module that uses it;
//! 8. the command line: `cli` (the binary, `main.rs`, only calls it).

#![warn(missing_docs)]

mod accounts;
mod archive;
mod artifact;
mod base;
mod build;
#[doc(hidden)]
pub mod cli;
mod diff;
mod documents;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
mod inspect;
mod layer;
mod layout;
mod nar;
mod nix;
mod nixdb;
pub mod oci;
mod plan;
pub mod progress;
mod referrers;
mod remote;
mod rootfs;
mod sbom;
pub mod sign;
pub mod spec;
mod unpack;
mod untar;
mod verify;

pub use build::{build, LayerInfo, LayoutReport, ManifestInfo, Options as BuildOptions};
pub use error::{Error, Result};
pub use remote::auth::{Credentials, Secret};
pub use remote::{
    pull, push, BlobAction, BlobReport, PullOptions, PullReport, PushReport, ReferrerReport,
    RemoteOptions, TagReport, DEFAULT_CHUNKED_ABOVE, DEFAULT_TIMEOUT,
};
pub use untar::Limits;
pub use verify::{verify, verify_with, Report as VerifyReport};

/// Internals that the integration tests check against other tools
/// (`nix-store --dump`, umoci's reading of whiteouts). Not part of the API:
/// hidden, and may change or go in any release.
#[doc(hidden)]
pub mod test_support {
    use std::path::Path;

    pub use crate::accounts::{
        accounts, check_user_field, Accounts, Base as AccountsBase, BaseFile as AccountsBaseFile,
        Group as AccountsGroup, Home as AccountsHome, User as AccountsUser,
    };
    pub use crate::base::tree::Node;
    pub use crate::nar::{dump as nar_dump, hash as nar_hash, nix_base32, sri as nar_sri};
    pub use crate::nixdb::{
        read_database as nixdb_read, scan as nixdb_scan, write_database, DatabaseTree,
        Entry as NixDbEntry, EntryKind as NixDbEntryKind, StorePathInfo,
        SCHEMA_VERSION as NIX_SCHEMA_VERSION,
    };

    /// The tree `fromImage` sees in the image `tag` of `layout`: each path
    /// and its node, in path order.
    pub fn base_tree(layout: &Path, tag: &str) -> crate::Result<Vec<(Vec<u8>, Node)>> {
        let from = crate::spec::FromImage {
            path: layout.to_owned(),
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let image = crate::base::BaseImage::open(&from, Path::new("."), None)?;
        let tree = crate::base::tree::BaseTree::read(&image, &crate::untar::Limits::default())?;
        Ok(tree.paths().map(|(p, n)| (p.to_vec(), n.clone())).collect())
    }
}
