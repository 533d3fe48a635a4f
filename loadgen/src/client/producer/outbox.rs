//! A producer's outbox: the batch being filled for each partition, and the Produce requests they
//! leave in, one per leader (split where a leader's batches would exceed a frame a broker takes).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;

use super::{open_link, Accounting, InFlight, Link, ProducerConfig, ProducerTally, SentBatch};
use crate::client::batch::BatchBuilder;
use crate::client::cluster::topic_name;
use crate::client::ClientError;

/// Largest Produce request a producer sends (record bytes), so that many partitions' batches
/// never add up to a frame a broker refuses.
pub(super) const REQUEST_BYTES_MAX: usize = 16 << 20;

/// One partition's batch being filled.
pub(super) struct OpenBatch {
    pub(super) builder: BatchBuilder,
    /// Per record: the time (since the start of the run) its latency is counted from, and its
    /// value size.
    pub(super) records: Vec<(Duration, u32)>,
    /// When the first record went in (linger counts from it).
    pub(super) first_at: Option<Duration>,
}

/// What a producer sends from: open batches, leader connections, and the tally of what the
/// sending thread itself accounts (acks=0).
pub(super) struct Outbox<'a> {
    pub(super) config: &'a ProducerConfig,
    pub(super) accounting: Accounting,
    pub(super) links: HashMap<String, Link>,
    pub(super) open: Vec<OpenBatch>,
    pub(super) tally: ProducerTally,
}

/// A finished batch with its record bytes, as a request carries it.
type ReadyBatch = (SentBatch, Bytes);

impl<'a> Outbox<'a> {
    /// Sends the non-empty batches of `partitions`, one request per leader (more when a leader's
    /// batches exceed [`REQUEST_BYTES_MAX`]).
    pub(super) fn send(&mut self, partitions: &[usize]) -> Result<(), ClientError> {
        let config = self.config;
        let by_leader = self.finish_batches(partitions)?;
        for (leader, batches) in split_requests(by_leader) {
            if !self.links.contains_key(leader) {
                let link = open_link(config, leader, &self.accounting)?;
                self.links.insert(leader.to_string(), link);
            }
            let request = produce_request(config, &batches);
            let batches: Vec<SentBatch> = batches.into_iter().map(|(sent, _)| sent).collect();
            self.send_request(leader, &request, batches)?;
        }
        Ok(())
    }

    /// Closes the open batches of `partitions` that hold records, grouped by leader.
    fn finish_batches(
        &mut self,
        partitions: &[usize],
    ) -> Result<BTreeMap<&'a str, Vec<ReadyBatch>>, ClientError> {
        let config: &'a ProducerConfig = self.config;
        let mut by_leader: BTreeMap<&'a str, Vec<ReadyBatch>> = BTreeMap::new();
        for &partition in partitions {
            let open = &mut self.open[partition];
            if open.builder.is_empty() {
                continue;
            }
            let value_bytes = open.builder.value_bytes();
            let records = open.builder.finish(config.compression)?;
            open.first_at = None;
            let sent = SentBatch {
                partition: i32::try_from(partition)
                    .expect("partition indexes come from an i32 count"),
                value_bytes,
                records: std::mem::take(&mut open.records),
            };
            by_leader
                .entry(config.leaders[partition].as_str())
                .or_default()
                .push((sent, records));
        }
        Ok(by_leader)
    }

    /// Sends one request on the leader's link: with acks, through the in-flight queue its
    /// receiver answers from; with acks=0, counted as acknowledged once written.
    fn send_request(
        &mut self,
        leader: &str,
        request: &ProduceRequest,
        batches: Vec<SentBatch>,
    ) -> Result<(), ClientError> {
        let link = self.links.get_mut(leader).expect("opened by the caller");
        match &link.in_flight {
            Some(in_flight) => {
                // Encode first (an encoding error must not leave a receiver waiting for an
                // answer), then reserve the in-flight slot, which blocks while
                // max_in_flight requests are out, then write.
                let correlation_id = link.sender.next_correlation_id();
                link.sender.encode(request, link.version, correlation_id)?;
                let measured = batches
                    .iter()
                    .any(|batch| self.accounting.holds_measured(batch));
                in_flight
                    .send(InFlight {
                        correlation_id,
                        batches,
                        handed_off: self.accounting.clock.elapsed(),
                        measured,
                    })
                    .map_err(|_| ClientError::Protocol("producer receiver stopped".into()))?;
                let write_from = self.accounting.clock.elapsed();
                link.sender.write_encoded()?;
                if measured {
                    let took = self.accounting.clock.elapsed().saturating_sub(write_from);
                    self.tally.request_writes.record_us(took.as_micros() as u64);
                }
            }
            None => {
                let handed_off = self.accounting.clock.elapsed();
                link.sender.send(request, link.version)?;
                for batch in &batches {
                    self.accounting
                        .acknowledged(&mut self.tally, batch, handed_off);
                }
            }
        }
        Ok(())
    }
}

/// Splits each leader's batches into requests of at most [`REQUEST_BYTES_MAX`] record bytes
/// (brokers refuse larger frames: Kafka's socket.request.max.bytes is 100 MiB), one batch at
/// least.
fn split_requests(by_leader: BTreeMap<&str, Vec<ReadyBatch>>) -> Vec<(&str, Vec<ReadyBatch>)> {
    let mut requests: Vec<(&str, Vec<ReadyBatch>)> = Vec::new();
    for (leader, batches) in by_leader {
        let mut request_bytes = 0;
        for batch in batches {
            let fits = request_bytes + batch.1.len() <= REQUEST_BYTES_MAX;
            match requests.last_mut() {
                Some((last_leader, open)) if *last_leader == leader && fits => {
                    request_bytes += batch.1.len();
                    open.push(batch);
                }
                _ => {
                    request_bytes = batch.1.len();
                    requests.push((leader, vec![batch]));
                }
            }
        }
    }
    requests
}

/// The Produce request carrying `batches` to the configured topic.
fn produce_request(config: &ProducerConfig, batches: &[ReadyBatch]) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(config.acks.wire_value())
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(&config.topic))
            .with_partition_data(
                batches
                    .iter()
                    .map(|(sent, records)| {
                        PartitionProduceData::default()
                            .with_index(sent.partition)
                            .with_records(Some(records.clone()))
                    })
                    .collect(),
            )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(partition: i32, record_bytes: usize) -> ReadyBatch {
        let sent = SentBatch {
            partition,
            value_bytes: record_bytes as u64,
            records: Vec::new(),
        };
        (sent, Bytes::from(vec![0u8; record_bytes]))
    }

    /// Each request as (leader, its batches' partitions).
    fn shape<'a>(requests: &[(&'a str, Vec<ReadyBatch>)]) -> Vec<(&'a str, Vec<i32>)> {
        requests
            .iter()
            .map(|(leader, batches)| {
                (
                    *leader,
                    batches.iter().map(|(sent, _)| sent.partition).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn requests_stay_within_the_frame_limit_and_never_mix_leaders() {
        let half = REQUEST_BYTES_MAX / 2;
        let mut by_leader = BTreeMap::new();
        by_leader.insert(
            "a:9092",
            vec![batch(0, 1), batch(1, half - 1), batch(2, half), batch(3, 1)],
        );
        by_leader.insert("b:9092", vec![batch(4, 1)]);
        let requests = split_requests(by_leader);
        // The first three batches fill a request exactly; the fourth starts the next one, and the
        // other leader's batch goes in a request of its own.
        assert_eq!(
            shape(&requests),
            vec![
                ("a:9092", vec![0, 1, 2]),
                ("a:9092", vec![3]),
                ("b:9092", vec![4])
            ]
        );
        for (_, batches) in &requests {
            let bytes: usize = batches.iter().map(|(_, records)| records.len()).sum();
            assert!(bytes <= REQUEST_BYTES_MAX, "a request of {bytes} bytes");
        }
    }

    #[test]
    fn a_batch_larger_than_the_limit_goes_alone() {
        let mut by_leader = BTreeMap::new();
        by_leader.insert(
            "a:9092",
            vec![batch(0, 1), batch(1, REQUEST_BYTES_MAX + 1), batch(2, 1)],
        );
        let requests = split_requests(by_leader);
        assert_eq!(
            shape(&requests),
            vec![
                ("a:9092", vec![0]),
                ("a:9092", vec![1]),
                ("a:9092", vec![2])
            ]
        );
    }
}
