//! nixoci: reproducible OCI image layouts from JSON descriptions of files and
//! Nix store paths. Same inputs, same bytes, on every machine.
//!
//! The data path runs one way: a spec ([`spec`]) is resolved into a sorted
//! tree ([`tree`]), streamed as a deterministic tar ([`tar`]) through a
//! hashing writer ([`digest`]) and a compressor ([`compress`]) into a blob
//! ([`layout`]); the descriptors become the config, manifest and index
//! documents ([`image`]) of an OCI image layout ([`build`]), whose names
//! ([`tags`]) say which image each tag means. From a layout: [`verify`],
//! [`inspect`], [`archive`], [`unpack`], and [`remote`] (push, pull, tag,
//! exists, inspect of a registry; the only module that uses the network).

pub mod archive;
pub mod artifact;
pub mod build;
pub mod error;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod nix;
pub mod oci;
pub mod progress;
pub mod remote;
pub mod spec;
pub mod unpack;
pub mod untar;
pub mod verify;

pub use error::{Error, Result};
/// The digest types, where they have always been.
pub use oci::digest;
