//! The data dirs as operators see them: per dir its space, state, partitions and their bytes,
//! gathered from every shard (each knows the sizes of the partitions it owns). Feeds /metrics and
//! DescribeLogDirs.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::rc::Rc;

use ringtail_engine::{DirState, ShardId};

use crate::shard::ShardContext;

/// One open partition's size and home.
#[derive(Debug, Clone)]
pub struct PartitionOnDisk {
    pub topic: String,
    pub partition: i32,
    /// Index of its data dir.
    pub dir_index: usize,
    pub size_bytes: u64,
}

/// Every open partition of every shard, with its home (partitions of offline dirs are not open).
pub async fn partitions_on_disk(context: &Rc<ShardContext>) -> Vec<PartitionOnDisk> {
    let mut all = Vec::new();
    for shard in 0..context.router.shard_count() {
        let collected = context
            .on_shard(ShardId(shard), |owner| async move {
                owner
                    .engine
                    .partitions()
                    .into_iter()
                    .filter_map(|(topic_partition, log)| {
                        Some(PartitionOnDisk {
                            dir_index: owner.engine.home_index(&topic_partition)?,
                            topic: topic_partition.topic.to_string(),
                            partition: topic_partition.partition.get(),
                            size_bytes: log.size_bytes(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        all.extend(collected.unwrap_or_default());
    }
    all
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The per-dir gauges of /metrics.
pub fn render_metrics(context: &ShardContext, partitions: &[PartitionOnDisk], out: &mut String) {
    let data_dirs = context.engine.data_dirs();
    let counts = data_dirs.partition_counts();
    let mut bytes = vec![0u64; data_dirs.dirs().len()];
    for partition in partitions {
        bytes[partition.dir_index] += partition.size_bytes;
    }
    let marks = data_dirs.watermarks();
    let _ = writeln!(
        out,
        "# HELP ringtail_data_dir_watermark_used_percent Used share that warns (warn) and refuses produce (limit).\n# TYPE ringtail_data_dir_watermark_used_percent gauge\nringtail_data_dir_watermark_used_percent{{level=\"warn\"}} {}\nringtail_data_dir_watermark_used_percent{{level=\"limit\"}} {}",
        marks.warn_used_percent, marks.limit_used_percent
    );
    let families: [(&str, &str); 6] = [
        ("total_bytes", "Capacity of the data dir's file system."),
        (
            "free_bytes",
            "Bytes available to the broker on the data dir's file system.",
        ),
        (
            "used_percent",
            "Used share of the data dir's file system, as df shows it.",
        ),
        ("partitions", "Partitions whose home is the data dir."),
        (
            "partition_bytes",
            "Bytes of the open partitions in the data dir.",
        ),
        (
            "state",
            "1 for the data dir's state (online, read-only: produce refused, offline).",
        ),
    ];
    for (name, help) in families {
        let _ = writeln!(
            out,
            "# HELP ringtail_data_dir_{name} {help}\n# TYPE ringtail_data_dir_{name} gauge"
        );
        for (index, dir) in data_dirs.dirs().iter().enumerate() {
            let path = label(&dir.path().display().to_string());
            let space = dir.space();
            let value = match name {
                "total_bytes" => space.total_bytes,
                "free_bytes" => space.free_bytes,
                "used_percent" => space.used_percent(),
                "partitions" => counts[index] as u64,
                "partition_bytes" => bytes[index],
                _ => {
                    for state in [DirState::Online, DirState::ReadOnly, DirState::Offline] {
                        let _ = writeln!(
                            out,
                            "ringtail_data_dir_state{{dir=\"{path}\",state=\"{}\"}} {}",
                            state.name(),
                            u8::from(dir.state() == state)
                        );
                    }
                    continue;
                }
            };
            let _ = writeln!(out, "ringtail_data_dir_{name}{{dir=\"{path}\"}} {value}");
        }
    }
}

/// One gauge per partition whose last move failed (bounded: one entry per partition), so an
/// alert can name it; the reason is in the log and `ringtail log-dirs`.
pub fn render_failed_moves(context: &ShardContext, out: &mut String) {
    let data_dirs = context.engine.data_dirs();
    let _ = writeln!(
        out,
        "# HELP ringtail_partition_move_failed 1 for a partition whose last move between data dirs failed (it serves from its old dir).\n# TYPE ringtail_partition_move_failed gauge"
    );
    for ((topic, partition), status) in data_dirs.moves() {
        let Some(dest) = data_dirs.dirs().get(status.dest_index) else {
            continue;
        };
        if status.error.is_some() {
            let _ = writeln!(
                out,
                "ringtail_partition_move_failed{{topic=\"{}\",partition=\"{partition}\",to_dir=\"{}\"}} 1",
                label(&topic),
                label(&dest.path().display().to_string())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        // A data dir path with a quote must not break the exposition format.
        assert_eq!(label("/a\"b\\c\nd"), "/a\\\"b\\\\c\\nd");
    }
}
