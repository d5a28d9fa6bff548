//! The ground floor: the OCI vocabulary every other module speaks, and
//! nothing else. Nothing here imports a module outside `oci` (except the
//! error type), so anything may import it.
//!
//! - [`media_type`]: media types and what kind of content each names;
//! - [`digest`]: sha256 digests, validated once when parsed, and the
//!   hashing reader and writer;
//! - [`descriptor`]: descriptors, platforms, and the choice of a platform
//!   from an image index;
//! - `json`: the one canonical form of a document, and bounded, strict
//!   parsing of documents;
//! - `fields`: the fields each document defines, for the keys of what
//!   a user merges into one;
//! - `validate`: the type every field of a config, manifest and index must
//!   have, as strict consumers read them;
//! - [`reference`](mod@reference): image references and the tag grammar;
//! - `time`: `SOURCE_DATE_EPOCH` and RFC 3339 times.

pub mod descriptor;
pub mod digest;
pub(crate) mod fields;
pub(crate) mod json;
pub mod media_type;
pub mod reference;
pub(crate) mod time;
pub(crate) mod validate;

pub use descriptor::{Descriptor, Platform};
pub use digest::Sha256Digest;
/// The JSON of `extraConfig` and friends ([`crate::spec::ImageSpec`]'s
/// `extra_config`), numbers kept as written.
pub use json::{Json, JsonObject};
pub use media_type::MediaType;
pub use reference::Reference;
