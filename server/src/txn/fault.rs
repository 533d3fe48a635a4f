//! Deterministic kill points between a transaction's decision and its markers, for the
//! integration tests (`server/tests/transactions_crash.rs`). Test builds only (debug assertions
//! on): with `RINGTAIL_TEST_TXN_CRASH_AFTER_MARKERS=k` the broker aborts (SIGABRT, no clean
//! shutdown, exactly like a crash) once a transaction's Prepare* state is durable in
//! `__transaction_state` and `k` of its markers are written (k = 0: right after the Prepare*
//! record). Markers are then written one at a time, in partition order, the offsets log's last,
//! so "k of n" names exactly which ones landed. Release builds never read the variable and
//! write markers concurrently.
#![forbid(unsafe_code)]

/// The variable a test sets: how many markers to write before the abort.
#[cfg(debug_assertions)]
const CRASH_ENV: &str = "RINGTAIL_TEST_TXN_CRASH_AFTER_MARKERS";

/// The kill point the test asked for, if any (read once).
#[cfg(debug_assertions)]
fn crash_after_markers() -> Option<usize> {
    use std::sync::OnceLock;
    static AFTER: OnceLock<Option<usize>> = OnceLock::new();
    *AFTER.get_or_init(|| {
        let value = std::env::var(CRASH_ENV).ok()?;
        match value.parse() {
            Ok(count) => Some(count),
            Err(_) => {
                tracing::error!(value, "{CRASH_ENV} is not a count of markers; ignored");
                None
            }
        }
    })
}

/// Whether markers must be written one at a time (a kill point is set).
pub fn markers_in_sequence() -> bool {
    #[cfg(debug_assertions)]
    {
        crash_after_markers().is_some()
    }
    #[cfg(not(debug_assertions))]
    {
        false
    }
}

/// Called once a transaction's Prepare* state is durable and after each of its markers, with
/// how many markers are written so far: aborts the process at the test's kill point.
pub fn markers_written(written: usize) {
    #[cfg(debug_assertions)]
    if crash_after_markers() == Some(written) {
        tracing::error!(
            markers = written,
            "{CRASH_ENV}: aborting the process at the kill point"
        );
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = written;
}
