//! The wall clock of timestamps and retention.
#![forbid(unsafe_code)]

/// Milliseconds since the Unix epoch, the clock of timestamps and retention.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
