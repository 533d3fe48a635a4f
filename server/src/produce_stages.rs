//! Where a Produce request's time goes, stage by stage (issue 13, part 2), as histograms on
//! `/metrics` (`ringtail_produce_stage_seconds{stage=...}`): the frame read, the decode, the wait
//! for the connection's previous produce, the hop to the owner shard, the append's validation,
//! the wait for the log's group commit, the write and the flush of that group, the wait in the
//! connection's in-order response queue, and the response write.
//!
//! Stages are measured, not inferred: each is an `Instant` pair around its own step, so the sum of
//! the stages' means is close to, not exactly, the request's latency (the gaps are task wake-ups).
#![forbid(unsafe_code)]

use std::time::Duration;

use crate::histogram::LatencyHistogram;

/// A step of a Produce request's life, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// From the frame's size prefix to its last byte (includes the client's sending).
    FrameRead,
    /// Decoding the request (kafka-protocol; record sets stay slices of the frame).
    Decode,
    /// Waiting until the connection's previous produce was queued on its logs (ordering).
    OrderWait,
    /// From sending a partition's append to the owner shard until it starts there.
    Hop,
    /// The append's synchronous part: CRC and batch checks, sequences, offsets, queueing.
    Append,
    /// Queued until the log's writer takes the append into a group (behind the previous group).
    GroupWait,
    /// The group's writes into the page cache.
    Write,
    /// The flush policy's sync after the group's writes.
    Flush,
    /// From the handler's answer until the connection's writer takes it (in-order responses).
    ResponseQueue,
    /// Writing the response frame to the socket.
    ResponseWrite,
}

const STAGES: [(Stage, &str); 10] = [
    (Stage::FrameRead, "frame_read"),
    (Stage::Decode, "decode"),
    (Stage::OrderWait, "order_wait"),
    (Stage::Hop, "hop"),
    (Stage::Append, "append"),
    (Stage::GroupWait, "group_wait"),
    (Stage::Write, "write"),
    (Stage::Flush, "flush"),
    (Stage::ResponseQueue, "response_queue"),
    (Stage::ResponseWrite, "response_write"),
];

static HISTOGRAMS: [LatencyHistogram; STAGES.len()] =
    [const { LatencyHistogram::new() }; STAGES.len()];

/// Counts one observation of `stage`.
pub fn record(stage: Stage, elapsed: Duration) {
    HISTOGRAMS[stage as usize].record(elapsed);
}

/// Appends the stage histograms to the `/metrics` text.
pub fn render_metrics(out: &mut String) {
    let labels: Vec<String> = STAGES
        .iter()
        .map(|(_, name)| format!("stage=\"{name}\""))
        .collect();
    let series: Vec<(&str, &LatencyHistogram)> = labels
        .iter()
        .zip(&HISTOGRAMS)
        .map(|(label, histogram)| (label.as_str(), histogram))
        .collect();
    crate::histogram::render_family(
        out,
        "ringtail_produce_stage_seconds",
        "Produce request latency by stage (partition stages once per partition).",
        &series,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_listed_in_order_with_their_histogram() {
        // `stage as usize` indexes the histograms, so the table must follow the enum's order.
        for (index, (stage, _)) in STAGES.iter().enumerate() {
            assert_eq!(*stage as usize, index);
        }
        record(Stage::Flush, Duration::from_millis(3));
        let mut out = String::new();
        render_metrics(&mut out);
        assert!(out.contains("ringtail_produce_stage_seconds_count{stage=\"flush\"} 1\n"));
        assert!(out.contains("ringtail_produce_stage_seconds_count{stage=\"frame_read\"} 0\n"));
    }
}
