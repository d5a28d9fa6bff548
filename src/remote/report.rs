//! What a transfer did with each blob, as push and pull report it.

use serde::Serialize;

use crate::oci::digest::Sha256Digest;

/// What happened to one blob.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct BlobReport {
    /// The blob.
    pub digest: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
    /// What happened to it.
    pub action: BlobAction,
}

/// What a transfer did with a blob (written in reports in lowercase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobAction {
    /// Sent to the registry.
    Uploaded,
    /// The registry had it already.
    Skipped,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Fetched from the registry.
    Downloaded,
}

impl BlobAction {
    /// The word reports and progress use.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobAction::Uploaded => "uploaded",
            BlobAction::Skipped => "skipped",
            BlobAction::Mounted => "mounted",
            BlobAction::Downloaded => "downloaded",
        }
    }
}
