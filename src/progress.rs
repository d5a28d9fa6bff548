//! Progress of long operations, reported to whoever shows it (the command
//! line draws bars on a terminal; the library itself never prints).

/// Receives progress events. Every method has a do-nothing default.
pub trait Progress: Sync {
    /// Layer `index` (0-based, within its image) starts; `content_bytes` of
    /// file content will be read into it.
    fn layer_start(&self, _index: usize, _content_bytes: u64) {}
    /// `n` more bytes of file content were read.
    fn advance(&self, _n: u64) {}
    /// The layer is written.
    fn layer_done(&self, _digest: &str, _size: u64) {}

    /// A blob transfer (upload or download) of `size` bytes starts.
    fn blob_start(&self, _digest: &str, _size: u64) {}
    /// `n` more bytes of the blob were sent or received.
    fn blob_advance(&self, _digest: &str, _n: u64) {}
    /// A try at moving the blob failed after reporting `n` bytes with
    /// [`Progress::blob_advance`]: they are taken back, since a retry
    /// moves (and reports) them again. So the bytes of a blob add up to
    /// its size once, retries or not.
    fn blob_rewind(&self, _digest: &str, _n: u64) {}
    /// The blob is done: `how` says what happened to it (uploaded, skipped,
    /// mounted, downloaded).
    fn blob_done(&self, _digest: &str, _how: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
