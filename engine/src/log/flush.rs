//! The flush policy: `every_batch` syncs after each group, `<N>ms` when the interval is due.
#![forbid(unsafe_code)]

use super::state::PartitionLog;
use crate::config::FlushPolicy;

impl PartitionLog {
    /// fdatasync under `every_batch`; one sync covers everything written so far.
    pub(crate) async fn sync_for_policy(&self) -> Result<(), String> {
        if self.state.borrow().config.flush != FlushPolicy::EveryBatch {
            return Ok(());
        }
        self.sync()
            .await
            .map_err(|err| format!("fdatasync failed: {err}"))
    }

    /// Makes everything written so far durable (used by `every_batch`, the interval flusher and
    /// shutdown). Sealed segments were synced when they were sealed; those rolled under
    /// `flush=none` are sealed first (`seal.rs`).
    ///
    /// Refused once the log failed: after a failed fsync the kernel may have dropped the dirty
    /// pages and marked them clean, so a second fsync would succeed without writing them and
    /// `durable_offset` would cover data that is gone (docs/decisions/0010-fsync-error-read-only.md).
    pub async fn sync(&self) -> std::io::Result<()> {
        self.finish_seals().await;
        let (file, written) = {
            let state = self.state.borrow();
            if let Some(reason) = &state.failure {
                return Err(std::io::Error::other(format!(
                    "the log failed earlier, its data is not known to be durable: {reason}"
                )));
            }
            if state.durable_offset == state.high_watermark {
                return Ok(());
            }
            (state.active().files.log.clone(), state.high_watermark)
        };
        file.sync_data().await?;
        let mut state = self.state.borrow_mut();
        state.stats.fsyncs += 1;
        state.durable_offset = state.durable_offset.max(written);
        for waiter in state.data_waiters.drain(..) {
            let _ = waiter.send(());
        }
        Ok(())
    }

    /// Syncs if the `<N>ms` flush policy is due. Returns whether it synced.
    pub async fn sync_if_due(&self, now_ms: i64) -> std::io::Result<bool> {
        let due = {
            let state = self.state.borrow();
            if state.failure.is_some() {
                // Never retried (see `sync`): the log is read-only until a restart recovers it.
                return Ok(false);
            }
            match state.config.flush {
                FlushPolicy::IntervalMs(interval_ms) => {
                    state.durable_offset < state.high_watermark
                        && now_ms - state.last_sync_ms >= interval_ms as i64
                }
                FlushPolicy::None | FlushPolicy::EveryBatch => false,
            }
        };
        if !due {
            return Ok(false);
        }
        if let Err(err) = self.sync().await {
            self.fail(format!("interval fdatasync failed: {err}"), Vec::new());
            return Err(err);
        }
        self.state.borrow_mut().last_sync_ms = now_ms;
        Ok(true)
    }
}
