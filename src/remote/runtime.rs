//! The tokio runtime the sync entry points (push, pull, tag, ...) run
//! their network work on, and where it runs: on the calling thread, or on
//! a thread of its own when the caller is itself inside a tokio runtime,
//! where a second runtime's `block_on` (and its drop) would panic.
//!
//! The disk and hashing work of a transfer does not run on the runtime's
//! tasks: it runs on its blocking threads (`spawn_blocking`), or before
//! or after the network work, in plain sync code.

use crate::error::{Error, Result};

/// A runtime of two worker threads, with I/O and timers.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the I/O runtime: {e}")))
}

/// Run `work` with a runtime of its own, and return what it returns.
///
/// Called from plain code, `work` runs on this thread. Called from inside
/// a tokio runtime (an `async fn`, a `#[tokio::test]`), it runs on a new
/// thread, and this one waits for it: the caller's runtime is neither
/// entered again nor used, so whatever kind it is (current-thread or
/// multi-thread), the call does not panic, and nothing it does waits on
/// that runtime. The caller's thread is blocked meanwhile, as by any
/// blocking call (on a current-thread runtime, its other tasks wait too);
/// async code should call through `tokio::task::spawn_blocking`.
pub(super) fn with_runtime<T: Send>(
    work: impl FnOnce(&tokio::runtime::Runtime) -> Result<T> + Send,
) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return work(&runtime()?);
    }
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("nixoci-remote".into())
            .spawn_scoped(s, || work(&runtime()?))
            .map_err(|e| {
                Error::Invalid(format!("cannot start a thread for the I/O runtime: {e}"))
            })?;
        // A panic in `work` is a bug: it goes on as one.
        worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
