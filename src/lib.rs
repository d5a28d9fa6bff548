//! nixoci: reproducible OCI image layouts from JSON descriptions of files and
//! Nix store paths. Same inputs, same bytes, on every machine.
//!
//! The data path runs one way: a spec ([`spec`]) is resolved into a sorted
//! tree ([`layer::tree`]), streamed as a deterministic tar ([`layer::tar`])
//! through a compressor ([`layer::compress`]) into a blob
//! ([`layout::store`]); its descriptor ([`oci::descriptor`]) goes into the
//! config, manifest and index documents ([`documents`]) of an OCI image layout
//! ([`layout`]), which [`build`] assembles and [`remote`] pushes.
//!
//! The modules come in layers, each importing only from its own layer or
//! those listed before it (the README's "How the code is laid out" has the
//! table; `tests/layering.rs` enforces it):
//!
//! 1. ground floor: [`error`], [`progress`], [`oci`];
//! 2. the layer write path: [`layer`];
//! 3. input: [`spec`], [`nix`], [`nar`] (the Nix archive hash of a tree),
//!    [`rootfs`] (an unpacked image's tree, read as a container sees it),
//!    [`plan`] (automatic layering: which store paths go into which layer);
//! 4. documents: [`documents`];
//! 5. layouts: [`layout`] (store, reader, tags);
//! 6. commands: [`build`] (with [`base`]: base images), [`verify`],
//!    [`inspect`], [`archive`], [`unpack`] (with [`untar`], [`artifact`]),
//!    [`diff`], [`sbom`], [`referrers`] (artifacts attached to images),
//!    `fuzz` (the fuzzing entry points);
//! 7. the network: [`remote`], the only module that uses it;
//! 8. the command line: `cli` (the binary, `main.rs`, only calls it).

pub mod archive;
pub mod artifact;
pub mod base;
pub mod build;
#[doc(hidden)]
pub mod cli;
pub mod diff;
pub mod documents;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod nar;
pub mod nix;
pub mod oci;
pub mod plan;
pub mod progress;
pub mod referrers;
pub mod remote;
pub mod rootfs;
pub mod sbom;
pub mod spec;
pub mod unpack;
pub mod untar;
pub mod verify;

pub use error::{Error, Result};
/// The digest types, where they have always been.
pub use oci::digest;
