//! Push, pull, tag, exists and inspect against registries that speak the OCI
//! distribution spec. nixoci makes the ping, the token request, manifest
//! requests, blob checks and downloads itself, every body read with a
//! bound; blob uploads and mounts go through the `oci-client` crate (the
//! ORAS project's client), given the token found here.
//!
//! What this module adds: reading and writing image layouts, leaving tags
//! that already name the image alone (a re-push writes nothing), skipping
//! blobs the registry has (HEAD), mounting blobs from other repositories of
//! the same registry, bounded parallel transfers, retries with backoff on
//! transient failures, verification of every digest and size while
//! reading, and reports. The manifest (or index) always goes last, so a
//! registry never names an image whose blobs it lacks.

pub mod auth;

mod api;
mod client;
mod errors;
mod mounts;
mod pull;
mod push;
mod query;

use serde::Serialize;

pub use client::{RemoteOptions, DEFAULT_CHUNKED_ABOVE};
pub use pull::{parse_platform, pull, PullReport};
pub use push::{push, PushReport, TagReport};
pub use query::{exists, inspect, tag};

/// What happened to one blob.
#[derive(Clone, Debug, Serialize)]
pub struct BlobReport {
    pub digest: String,
    pub size: u64,
    /// `uploaded`, `skipped` (the registry had it), `mounted`, `downloaded`.
    pub action: &'static str,
}
