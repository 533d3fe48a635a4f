//! The switch (step 2: under the shard's open lock, the catch-up copy, the commit, the log
//! opened at its new home) and the clean-up after it (step 3).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::info;

use super::copy::{sync_copy, sync_dir, ActiveLogEnd, FileStamps, Throttle};
use super::old_copies::{remove_old_copy, retire_old_copy};
use super::{move_dir, MoveError, MoveReport};
use crate::shard::partition_dir;

/// Logs a finished move.
pub(crate) fn log_moved(topic: &str, partition: i32, dest: &Path, report: &MoveReport) {
    info!(topic, partition, dest = %dest.display(), bytes_copied = report.bytes_copied,
        switch_pause_ms = report.switch_pause.as_millis() as u64, "partition moved");
}

impl crate::Shard {
    /// Moves a partition this shard owns to data dir `dest_index` (see the module doc). Returns
    /// once it is done or failed; a failure leaves the partition serving from its source.
    pub async fn move_partition(
        &self,
        topic_partition: &crate::TopicPartition,
        dest_index: usize,
        bytes_per_sec: u64,
    ) -> Result<MoveReport, MoveError> {
        let data_dirs = std::sync::Arc::clone(self.data_dirs());
        let dest_data_dir = data_dirs
            .dirs()
            .get(dest_index)
            .ok_or_else(|| MoveError::UnknownDir(PathBuf::new()))?
            .path()
            .to_path_buf();
        if !data_dirs.accepts_produce(dest_index) {
            return Err(MoveError::DirNotOnline(dest_data_dir));
        }
        let (topic, partition) = (
            topic_partition.topic.to_string(),
            topic_partition.partition.get(),
        );
        let source_index = data_dirs
            .home_index(&topic, partition)
            .ok_or(MoveError::NoHome)?;
        if source_index == dest_index {
            return Ok(MoveReport {
                bytes_copied: 0,
                switch_pause: Duration::ZERO,
            });
        }
        let source = partition_dir(
            data_dirs.dirs()[source_index].path(),
            &topic,
            partition.into(),
        );
        let staging = move_dir(&dest_data_dir, &topic, partition);
        let result = self
            .copy_and_switch(
                topic_partition,
                &source,
                &staging,
                dest_index,
                bytes_per_sec,
            )
            .await;
        if result.is_err() {
            let staging = staging.clone();
            let _ = crate::io::blocking(move || match std::fs::remove_dir_all(&staging) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            })
            .await;
        }
        let (report, old_copy) = result?;
        if let Some(old_copy) = old_copy {
            remove_old_copy(old_copy).await;
        }
        log_moved(&topic, partition, &dest_data_dir, &report);
        Ok(report)
    }

    /// Steps 1 and 2 of the module doc; the moved partition's old copy, renamed, if there is one
    /// left to remove.
    async fn copy_and_switch(
        &self,
        topic_partition: &crate::TopicPartition,
        source: &Path,
        staging: &Path,
        dest_index: usize,
        bytes_per_sec: u64,
    ) -> Result<(MoveReport, Option<PathBuf>), MoveError> {
        let (from, to) = (source.to_path_buf(), staging.to_path_buf());
        let copied_log = self.partition(topic_partition);
        let active_log =
            copied_log
                .as_ref()
                .map(|log| log.active_segment_end())
                .map(|(base_offset, end)| ActiveLogEnd {
                    file_name: crate::segment::log_file_name(base_offset),
                    end_bytes: end.get(),
                });
        let (stamps, bulk_bytes) = crate::io::blocking(move || {
            let mut throttle = Throttle::new(bytes_per_sec);
            Ok(sync_copy(
                &from,
                &to,
                &FileStamps::new(),
                &mut throttle,
                false,
                active_log.as_ref(),
            ))
        })
        .await
        .map_err(|source| MoveError::Copy {
            path: staging.to_path_buf(),
            source,
        })??;
        let _opening = self.open_lock.lock().await;
        if self.is_closed() {
            return Err(MoveError::ShardClosed);
        }
        let paused = Instant::now();
        let log = self.partition(topic_partition);
        let config = match &log {
            Some(log) => log.config(),
            None => return Err(MoveError::Open("the partition is not open".into())),
        };
        let log = log.expect("checked above");
        // The bulk copy ran without the lock: a DeleteTopics (and a topic made again under the
        // name) may have replaced the log meanwhile. Switched, the new topic's log was closed and
        // its files replaced by the deleted partition's copy mixed with its own.
        if !copied_log.is_some_and(|copied| std::rc::Rc::ptr_eq(&copied, &log)) {
            return Err(MoveError::Replaced);
        }
        self.partitions.borrow_mut().remove(topic_partition);
        let switched = self
            .switch(topic_partition, &log, source, staging, dest_index, stamps)
            .await;
        let (home, bytes) = match switched {
            Ok((home, bytes)) => (home, bytes),
            Err(err) => {
                // Not committed: the source is still the home; serve from it again.
                let (reopened, _) =
                    crate::PartitionLog::open(source, config)
                        .await
                        .map_err(|open| {
                            MoveError::Open(format!("{err}; reopening the source: {open}"))
                        })?;
                self.partitions
                    .borrow_mut()
                    .insert(topic_partition.clone(), reopened);
                return Err(err);
            }
        };
        // Committed: the source is no longer the partition's home.
        let old_copy = retire_old_copy(source).await;
        let (moved, _) = match crate::PartitionLog::open(&home, config).await {
            Ok(opened) => opened,
            Err(err) => {
                if let Some(old_copy) = old_copy {
                    remove_old_copy(old_copy).await;
                }
                return Err(MoveError::Open(err.to_string()));
            }
        };
        self.partitions
            .borrow_mut()
            .insert(topic_partition.clone(), moved);
        let report = MoveReport {
            bytes_copied: bulk_bytes + bytes,
            switch_pause: paused.elapsed(),
        };
        Ok((report, old_copy))
    }

    /// Closes the log, catches the copy up, renames it into place and commits the new home.
    async fn switch(
        &self,
        topic_partition: &crate::TopicPartition,
        log: &crate::PartitionLog,
        source: &Path,
        staging: &Path,
        dest_index: usize,
        stamps: FileStamps,
    ) -> Result<(PathBuf, u64), MoveError> {
        log.close().await.map_err(MoveError::Close)?;
        // A preallocated active segment is written inside its allocated size: copy it whole.
        let preallocated = log.config().preallocate;
        let home = partition_dir(
            self.data_dirs().dirs()[dest_index].path(),
            &topic_partition.topic,
            topic_partition.partition,
        );
        let (from, to, final_dir) = (source.to_path_buf(), staging.to_path_buf(), home.clone());
        let bytes = crate::io::blocking(move || {
            // Closed: nothing is written during this round.
            let (_, bytes) = sync_copy(
                &from,
                &to,
                &stamps,
                &mut Throttle::unbounded(),
                preallocated,
                None,
            )
            .map_err(std::io::Error::other)?;
            sync_dir(&to)?;
            std::fs::rename(&to, &final_dir)?;
            sync_dir(final_dir.parent().unwrap_or(Path::new("/")))?;
            Ok(bytes)
        })
        .await
        .map_err(|source| MoveError::Copy {
            path: staging.to_path_buf(),
            source,
        })?;
        let committed = self
            .data_dirs()
            .set_home(
                &topic_partition.topic,
                topic_partition.partition.get(),
                dest_index,
            )
            .await;
        if let Err(err) = committed {
            // Not committed: the renamed copy is a stray; take it out of the way again.
            let stray = home.clone();
            let _ = crate::io::blocking(move || std::fs::remove_dir_all(&stray)).await;
            return Err(MoveError::Placement(err.to_string()));
        }
        Ok((home, bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::sync::Arc;

    use super::super::two_dirs;
    use super::*;
    use crate::{DataDirs, DiskWatermarks, LogConfig, Shard, ShardId, TopicPartition};

    #[compio::test]
    async fn a_move_keeps_offsets_and_records_and_the_log_takes_appends_after() {
        for write_direct in [false, true] {
            // The moved log is the same log: same offsets and bytes, new home recorded, old copy gone.
            let root = tempfile::tempdir().unwrap();
            let data_dirs = two_dirs(root.path());
            let shard = Rc::new(Shard::with_data_dirs(ShardId(0), Arc::clone(&data_dirs)));
            let tp = TopicPartition::new("t", 0);
            let config = LogConfig {
                segment_bytes: 4096,
                write_direct,
                ..LogConfig::default()
            };
            let log = shard.open_partition(tp.clone(), config).await.unwrap();
            for _ in 0..50 {
                let batch = crate::batch::encode_uniform_batch(0, 5, 100);
                log.append(bytes::BytesMut::from(&batch[..]), 0)
                    .await
                    .unwrap();
            }
            let before = log.read_bytes(0, 1 << 30, true).await.unwrap();
            let source = shard.home_index(&tp).unwrap();
            let dest = 1 - source;
            let report = shard.move_partition(&tp, dest, 0).await.unwrap();
            assert!(report.bytes_copied >= before.len() as u64);
            assert_eq!(shard.home_index(&tp), Some(dest));
            let moved = shard.partition(&tp).unwrap();
            assert!(!Rc::ptr_eq(&moved, &log));
            assert_eq!(moved.high_watermark(), crate::Offset::new(250));
            let after = moved.read_bytes(0, 1 << 30, true).await.unwrap();
            assert_eq!(after, before);
            let batch = crate::batch::encode_uniform_batch(0, 5, 100);
            let outcome = moved
                .append(bytes::BytesMut::from(&batch[..]), 0)
                .await
                .unwrap();
            assert_eq!(outcome.base_offset, crate::Offset::new(250));
            let old = partition_dir(data_dirs.dirs()[source].path(), "t", 0.into());
            assert!(!old.exists(), "the source copy is removed");
            let reopened = DataDirs::open(
                data_dirs
                    .dirs()
                    .iter()
                    .map(|d| d.path().to_path_buf())
                    .collect(),
                DiskWatermarks::default(),
            )
            .unwrap();
            assert_eq!(
                reopened.home_index("t", 0),
                Some(dest),
                "the new home is durable"
            );
        }
    }

    #[compio::test]
    async fn a_partition_made_again_while_the_old_copy_is_removed_keeps_its_files() {
        // The move removes the old copy after releasing the open lock. A DeleteTopics and the
        // topic made again in that window found the old copy still under the partition's name:
        // placed there (an existing copy is a partition's home), the new partition recovered the
        // deleted one's records as its own, and the removal then took its files.
        let root = tempfile::tempdir().unwrap();
        let data_dirs = two_dirs(root.path());
        let shard = Shard::with_data_dirs(ShardId(0), Arc::clone(&data_dirs));
        let tp = TopicPartition::new("t", 0);
        let config = LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let log = shard
            .open_partition(tp.clone(), config.clone())
            .await
            .unwrap();
        for _ in 0..10 {
            let batch = crate::batch::encode_uniform_batch(0, 5, 100);
            log.append(bytes::BytesMut::from(&batch[..]), 0)
                .await
                .unwrap();
        }
        drop(log);
        let source = shard.home_index(&tp).unwrap();
        let dest = 1 - source;
        let source_dir = partition_dir(data_dirs.dirs()[source].path(), "t", 0.into());
        let staging = move_dir(data_dirs.dirs()[dest].path(), "t", 0);
        // The move up to the release of the open lock (`move_partition` without its last step).
        let (_, old_copy) = shard
            .copy_and_switch(&tp, &source_dir, &staging, dest, 0)
            .await
            .unwrap();
        // The window: the topic is deleted and made again.
        shard.delete_partition(&tp).await.unwrap();
        let new = shard
            .open_partition(tp.clone(), config.clone())
            .await
            .unwrap();
        assert_eq!(
            new.high_watermark(),
            crate::Offset::new(0),
            "the new partition took the deleted one's records"
        );
        let batch = crate::batch::encode_uniform_batch(0, 5, 100);
        new.append(bytes::BytesMut::from(&batch[..]), 0)
            .await
            .unwrap();
        // The move's last step.
        if let Some(old_copy) = old_copy {
            remove_old_copy(old_copy).await;
        }
        shard.close().await.unwrap();
        for dir in data_dirs.dirs() {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                assert!(
                    name == "t-0" || name.starts_with("placement.json"),
                    "{name} left in {}",
                    dir.path().display()
                );
            }
        }
        // From disk, as at a restart: the new partition's five records.
        let shard = Shard::with_data_dirs(ShardId(0), two_dirs(root.path()));
        let reopened = shard.open_partition(tp.clone(), config).await.unwrap();
        assert_eq!(reopened.high_watermark(), crate::Offset::new(5));
        let bytes = reopened.read_bytes(0, 1 << 20, true).await.unwrap();
        assert_eq!(bytes.len(), batch.len(), "the new partition's one batch");
        shard.close().await.unwrap();
    }
}
