//! Blocking work (a redb transaction) off the async threads: on tokio's blocking pool, or
//! inline on a thread that asked for it (the simulation, which needs every step on one
//! thread in an order its seed decides).

thread_local! {
    /// Whether [`off_thread`] runs its work on the calling thread (set by a simulation
    /// that needs every step on one thread, in an order its seed decides).
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes [`off_thread`] run work inline on this thread from now on.
pub fn run_blocking_inline() {
    INLINE.with(|i| i.set(true));
}

/// Blocking work (a database transaction) that could not finish: it panicked or its task
/// was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("blocking work did not finish: {0}")]
pub struct BlockingLost(String);

/// Runs blocking `work` on tokio's blocking pool, or inline where
/// [`run_blocking_inline`] was called on this thread.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BlockingLost> {
    if INLINE.with(|i| i.get()) {
        // As on the pool, a panic is this call's failure, not its caller's.
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .map_err(|_| BlockingLost("the work panicked".into()));
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlockingLost(e.to_string()))
}
