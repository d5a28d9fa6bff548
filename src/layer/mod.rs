//! The layer write path, in data order: the files a layer holds are
//! resolved into a sorted [`tree`], written as a deterministic [`tar`]
//! stream, and [`compress`]ed (gzip in parallel blocks by [`pargz`], zstd,
//! or none) into a blob. Each compression knows the media type of the
//! layers it writes, so this path needs nothing from the image documents;
//! it imports only the ground floor (`oci`, `error`, `progress`).

pub mod compress;
pub mod pargz;
pub mod tar;
pub mod tree;
