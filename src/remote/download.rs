//! The blob downloads of `pull`: `--jobs` at once, each with retries, and
//! each written by a thread of its own. The async task only moves bytes
//! off the network; a blocking thread per blob (`spawn_blocking`) hashes
//! them and writes them to disk, fed through a bounded channel, so that
//! parallel downloads overlap their hashing and writing too, not only
//! their waiting on the network.
//!
//! Memory stays bounded, and small: at most [`QUEUED_BYTES`] of a blob
//! (and at most [`QUEUED_CHUNKS`] chunks, a chunk being what one read of
//! the connection gave) wait for its writer, and a download waits when its
//! writer is that far behind. Bounded by chunks alone, a fast registry's
//! chunks (up to the HTTP client's read buffer, some hundreds of KiB) let
//! the queues of 4 downloads hold tens of MB. A blob is named only once
//! complete and verified; a failed or interrupted download (or writer)
//! leaves no file.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::{mpsc, Semaphore};

use super::client::{Remote, RemoteOptions};
use super::errors::Failure;
use super::report::{BlobAction, BlobReport};
use crate::error::{Error, Result};
use crate::layout::BlobDir;
use crate::oci::digest::Sha256Digest;
use crate::oci::reference::Reference;
use crate::progress::Progress;

/// How many received chunks of one blob may wait for its writer.
const QUEUED_CHUNKS: usize = 16;

/// How many received bytes of one blob may wait for its writer: the
/// writer hashes and writes faster than a local registry sends, so a
/// short queue keeps it busy. With 16 chunks and no byte limit, a pull of
/// three 70 MB layers peaked at 42 MB of memory; with this, at 18 MB, in
/// the same time (`benches/push.sh`).
const QUEUED_BYTES: usize = 256 << 10;

/// What a download hands the writer of its blob.
enum Piece {
    /// The next bytes, and the room ([`QUEUED_BYTES`]) they take in the
    /// queue, given back once they are written.
    Chunk(Bytes, u32),
    /// Every byte was sent: verify, and name the blob. A channel closed
    /// without it means the download failed or was dropped.
    End,
}

/// Every blob of `wanted` (digest and declared size) into `blobs_dir`,
/// `opts.jobs` at once. Runs on a runtime: its blocking threads write.
pub(super) async fn pull_blobs(
    remote: &Remote,
    source: &Reference,
    blobs_dir: &BlobDir,
    wanted: BTreeMap<Sha256Digest, u64>,
    opts: &RemoteOptions,
    progress: Arc<dyn Progress + Send>,
) -> Result<Vec<BlobReport>> {
    futures_util::stream::iter(wanted)
        .map(|(digest, size)| {
            let progress = progress.clone();
            async move { pull_blob(remote, source, blobs_dir, &digest, size, progress).await }
        })
        .buffer_unordered(opts.jobs.max(1))
        .try_collect()
        .await
}

async fn pull_blob(
    remote: &Remote,
    source: &Reference,
    blobs_dir: &BlobDir,
    digest: &Sha256Digest,
    size: u64,
    progress: Arc<dyn Progress + Send>,
) -> Result<BlobReport> {
    progress.blob_start(&digest.to_string(), size);
    remote
        .retry(|| pull_blob_once(remote, source, blobs_dir, digest, size, &*progress))
        .await
        .map_err(|e| remote.explain_about(&format!("blob {digest} ({size} bytes)"), e))?;
    progress.blob_done(&digest.to_string(), BlobAction::Downloaded.as_str());
    Ok(BlobReport {
        digest: digest.clone(),
        size,
        action: BlobAction::Downloaded,
    })
}

/// One try at blob `digest`: downloaded here, written by a blocking
/// thread ([`write_blob`]). A failed try takes back the progress it
/// reported, so that a retry counts the blob's bytes once.
async fn pull_blob_once(
    remote: &Remote,
    source: &Reference,
    blobs_dir: &BlobDir,
    digest: &Sha256Digest,
    size: u64,
    progress: &dyn Progress,
) -> std::result::Result<(), Failure> {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let room = Arc::new(Semaphore::new(QUEUED_BYTES));
    let writer = {
        let (dir, digest, room) = (blobs_dir.clone(), digest.clone(), room.clone());
        tokio::task::spawn_blocking(move || write_blob(&dir, rx, &room, &digest, size))
    };
    let shown = digest.to_string();
    let mut reported = 0u64;
    let received = remote
        .get_blob(source, digest, size, |chunk| {
            reported += chunk.len() as u64;
            progress.blob_advance(&shown, chunk.len() as u64);
            let (tx, room) = (&tx, &room);
            // Refused only when the writer stopped (it closes `room`): its
            // error says why.
            async move {
                let stopped = || Error::Invalid(format!("the writer of blob {digest} stopped"));
                // A chunk bigger than the whole room takes all of it.
                let n = chunk.len().clamp(1, QUEUED_BYTES) as u32;
                room.acquire_many(n).await.map_err(|_| stopped())?.forget();
                tx.send(Piece::Chunk(chunk, n)).await.map_err(|_| stopped())
            }
        })
        .await;
    if received.is_ok() {
        // Refused only when the writer stopped, as above.
        let _ = tx.send(Piece::End).await;
    }
    drop(tx);
    let written = writer.await.map_err(|e| {
        Failure::Local(Error::Invalid(format!(
            "the writer of blob {digest} stopped: {e}"
        )))
    });
    // The writer's failure first: a download refused by a writer that
    // stopped failed because of it.
    let done = match (written.and_then(|w| w), received) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(true), Ok(())) => Ok(()),
        (Ok(false), Ok(())) => Err(Failure::Local(Error::Invalid(format!(
            "the writer of blob {digest} stopped before the end"
        )))),
    };
    if done.is_err() {
        progress.blob_rewind(&shown, reported);
    }
    done
}

/// Write the pieces of blob `digest` (`size` bytes) into a new file of
/// `blobs_dir` as they come, hashing them, on a blocking thread, giving
/// each one's room back to `room` once written (and closing `room` when it
/// stops, so that a download waiting for room stops too). At
/// [`Piece::End`] the blob is named if it is `digest` (else removed, a
/// [`Failure::Garbled`]: fetched again): `Ok(true)`. When the channel
/// closes before the end (the download failed or was dropped), the file
/// is removed: `Ok(false)`.
fn write_blob(
    blobs_dir: &BlobDir,
    mut rx: mpsc::Receiver<Piece>,
    room: &Semaphore,
    digest: &Sha256Digest,
    size: u64,
) -> std::result::Result<bool, Failure> {
    /// Closes the room when the writer stops, however it stops.
    struct Close<'a>(&'a Semaphore);
    impl Drop for Close<'_> {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _close = Close(room);
    let mut w = blobs_dir.writer()?;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Chunk(c, n) => {
                w.write_all(&c)
                    .map_err(|e| Error::io(blobs_dir.root(), e))?;
                room.add_permits(n as usize);
            }
            Piece::End => {
                w.complete_verified(digest, size, &format!("blob {digest} from the registry"))
                    .map_err(|e| match e {
                        // Fetched again (a proxy or a cache may have garbled it).
                        Error::DigestMismatch { .. } => Failure::Garbled(e),
                        e => Failure::Local(e),
                    })?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}
