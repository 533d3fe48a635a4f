//! Prometheus text metrics on `--metrics-listen` (`GET /metrics`): requests and their latency per
//! API, bytes in and out (and how many of the out bytes were spliced, never entering user space),
//! partitions and their log end offsets.
//!
//! Counters are process-wide atomics (relaxed: they are statistics, not synchronisation); the
//! per-partition figures are collected from each shard by message passing when scraped.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::{TcpListener, TcpStream};
use compio::BufResult;
use kafka_protocol::messages::ApiKey;
use ringtail_engine::ShardId;

use crate::api::SUPPORTED_APIS;
use crate::shard::ShardContext;

/// Largest API key we count (Kafka's keys are small integers).
const API_KEYS_MAX: usize = 128;

struct ApiCounters {
    requests: AtomicU64,
    latency_micros_sum: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // each array slot is its own counter
const ZERO: ApiCounters = ApiCounters {
    requests: AtomicU64::new(0),
    latency_micros_sum: AtomicU64::new(0),
};

static API_COUNTERS: [ApiCounters; API_KEYS_MAX] = [ZERO; API_KEYS_MAX];

/// Versions counted per API (Kafka's highest is below 20); a request of a higher one is not
/// counted by version.
const API_VERSIONS_MAX: usize = 32;
#[allow(clippy::declare_interior_mutable_const)] // each array slot is its own counter
const ZERO_COUNT: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)] // each array slot is its own counter
const ZERO_VERSIONS: [AtomicU64; API_VERSIONS_MAX] = [ZERO_COUNT; API_VERSIONS_MAX];
/// Requests served per API and version: which versions clients really use (a version the broker
/// codes by hand, such as OffsetCommit v10, shows here when a client negotiated it).
static API_VERSION_REQUESTS: [[AtomicU64; API_VERSIONS_MAX]; API_KEYS_MAX] =
    [ZERO_VERSIONS; API_KEYS_MAX];
static BYTES_IN: AtomicU64 = AtomicU64::new(0);
static BYTES_OUT: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_REFUSED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_IDLE_CLOSED: AtomicU64 = AtomicU64::new(0);
static FRAMES_TIMED_OUT: AtomicU64 = AtomicU64::new(0);
static TOPIC_CREATIONS_REFUSED: AtomicU64 = AtomicU64::new(0);
static METRICS_CONNECTIONS_OPEN: AtomicU64 = AtomicU64::new(0);
static MOVES_FAILED: AtomicU64 = AtomicU64::new(0);

/// Scrapes answered at once; more connections are closed unanswered (a scraper needs one).
const METRICS_CONNECTIONS_MAX: u64 = 16;
/// A scrape's request must arrive within this, or its connection is closed.
const METRICS_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of a scrape's request read; `GET /metrics` fits many times over.
const METRICS_REQUEST_BYTES_MAX: usize = 8192;

/// Counts one served request (of `version`) and how long it took.
pub fn record_request(api: ApiKey, version: i16, latency: Duration) {
    let by_version = API_VERSION_REQUESTS
        .get(api as i16 as usize)
        .and_then(|versions| versions.get(usize::try_from(version).ok()?));
    if let Some(count) = by_version {
        count.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(counters) = API_COUNTERS.get(api as i16 as usize) {
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters
            .latency_micros_sum
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }
}

pub fn record_bytes_in(bytes: usize) {
    BYTES_IN.fetch_add(bytes as u64, Ordering::Relaxed);
}

pub fn record_bytes_out(bytes: u64) {
    BYTES_OUT.fetch_add(bytes, Ordering::Relaxed);
}

pub fn record_connection() {
    CONNECTIONS_ACCEPTED.fetch_add(1, Ordering::Relaxed);
}

/// A connection refused by `--max-connections` or `--max-connections-per-ip`.
pub fn record_connection_refused() {
    CONNECTIONS_REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// A connection closed after `--connections-max-idle-ms` without a request.
pub fn record_idle_closed() {
    CONNECTIONS_IDLE_CLOSED.fetch_add(1, Ordering::Relaxed);
}

/// A frame that did not arrive within `--frame-read-timeout-ms`.
pub fn record_frame_timeout() {
    FRAMES_TIMED_OUT.fetch_add(1, Ordering::Relaxed);
}

/// Topics not created because a quota or a topic/partition bound refused them.
pub fn record_topic_creations_refused(topics: u64) {
    TOPIC_CREATIONS_REFUSED.fetch_add(topics, Ordering::Relaxed);
}

/// A partition move between data dirs that failed (the partition serves from its source).
pub fn record_move_failed() {
    MOVES_FAILED.fetch_add(1, Ordering::Relaxed);
}

/// Serves `/metrics` until the shard stops. Runs on shard 0.
pub async fn serve(context: Rc<ShardContext>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // EMFILE and the like: back off rather than spin, and keep listening.
                tracing::warn!(%err, "metrics listener: accept failed");
                compio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if METRICS_CONNECTIONS_OPEN.load(Ordering::Relaxed) >= METRICS_CONNECTIONS_MAX {
            drop(stream);
            continue;
        }
        METRICS_CONNECTIONS_OPEN.fetch_add(1, Ordering::Relaxed);
        let context = Rc::clone(&context);
        compio::runtime::spawn(async move {
            answer(context, stream).await;
            METRICS_CONNECTIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
        })
        .detach();
    }
}

async fn answer(context: Rc<ShardContext>, mut stream: TcpStream) {
    // One small GET per connection, read once; the rest of a longer request is not read.
    let request = {
        let read = std::pin::pin!(stream.read(Vec::<u8>::with_capacity(METRICS_REQUEST_BYTES_MAX)));
        let timer = std::pin::pin!(compio::time::sleep(METRICS_READ_TIMEOUT));
        match futures_util::future::select(read, timer).await {
            futures_util::future::Either::Left((BufResult(Ok(_), request), _)) => request,
            _ => return,
        }
    };
    let text = String::from_utf8_lossy(&request);
    let (status, body) = if text.starts_with("GET /metrics") {
        ("200 OK", render(&context).await)
    } else {
        ("404 Not Found", "try /metrics\n".to_string())
    };
    let mut response = BytesMut::new();
    let _ = write!(
        response_writer(&mut response),
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let BufResult(_, _) = stream.write_all(response).await;
}

fn response_writer(buffer: &mut BytesMut) -> impl std::fmt::Write + '_ {
    struct Writer<'a>(&'a mut BytesMut);
    impl std::fmt::Write for Writer<'_> {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            self.0.extend_from_slice(text.as_bytes());
            Ok(())
        }
    }
    Writer(buffer)
}

/// The Prometheus text exposition of everything we count.
async fn render(context: &Rc<ShardContext>) -> String {
    let mut out = String::new();
    out.push_str("# HELP ringtail_requests_total Requests served, by API.\n# TYPE ringtail_requests_total counter\n");
    for (api, _, _) in SUPPORTED_APIS {
        let counters = &API_COUNTERS[*api as i16 as usize];
        let _ = writeln!(
            out,
            "ringtail_requests_total{{api=\"{api:?}\"}} {}",
            counters.requests.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP ringtail_requests_by_version_total Requests served, by API and version (listed once served).\n# TYPE ringtail_requests_by_version_total counter\n");
    for (api, min, max) in SUPPORTED_APIS {
        for version in *min..=*max {
            let Some(count) = API_VERSION_REQUESTS[*api as i16 as usize].get(version as usize)
            else {
                continue;
            };
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                let _ = writeln!(
                    out,
                    "ringtail_requests_by_version_total{{api=\"{api:?}\",version=\"{version}\"}} {count}"
                );
            }
        }
    }
    out.push_str("# HELP ringtail_request_latency_seconds Time from request read to response ready, by API.\n# TYPE ringtail_request_latency_seconds summary\n");
    for (api, _, _) in SUPPORTED_APIS {
        let counters = &API_COUNTERS[*api as i16 as usize];
        let sum = counters.latency_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "ringtail_request_latency_seconds_sum{{api=\"{api:?}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "ringtail_request_latency_seconds_count{{api=\"{api:?}\"}} {}",
            counters.requests.load(Ordering::Relaxed)
        );
    }
    crate::quotas::enforce::render_metrics(&mut out);
    render_scalar(
        &mut out,
        "bytes_in_total",
        "Request bytes read from clients, size prefixes included.",
        "counter",
        BYTES_IN.load(Ordering::Relaxed),
    );
    render_scalar(
        &mut out,
        "bytes_out_total",
        "Response bytes sent to clients, records included.",
        "counter",
        BYTES_OUT.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP ringtail_spliced_bytes_total Record bytes sent file-to-socket by splice (no user-space copy).\n# TYPE ringtail_spliced_bytes_total counter\nringtail_spliced_bytes_total {}",
        crate::zero_copy::spliced_bytes_total()
    );
    crate::residency::render_metrics(&mut out);
    crate::produce_stages::render_metrics(&mut out);
    render_scalar(
        &mut out,
        "connections_accepted_total",
        "Client connections accepted.",
        "counter",
        CONNECTIONS_ACCEPTED.load(Ordering::Relaxed),
    );
    crate::placement::render_metrics(&mut out, &context.router.connections);
    crate::frame_pool::render_metrics(&mut out, &context.router.frame_pools);
    let limits = &context.limits;
    for (name, help, kind, value) in [
        (
            "connections_open",
            "Client connections open now.",
            "gauge",
            limits.connections.open_total(),
        ),
        (
            "connections_refused_total",
            "Connections closed at accept by --max-connections or --max-connections-per-ip.",
            "counter",
            CONNECTIONS_REFUSED.load(Ordering::Relaxed),
        ),
        (
            "connections_idle_closed_total",
            "Connections closed after --connections-max-idle-ms.",
            "counter",
            CONNECTIONS_IDLE_CLOSED.load(Ordering::Relaxed),
        ),
        (
            "frames_timed_out_total",
            "Frames not complete within --frame-read-timeout-ms.",
            "counter",
            FRAMES_TIMED_OUT.load(Ordering::Relaxed),
        ),
        (
            "request_bytes_in_flight",
            "Request bytes held now, against --queued-max-request-bytes.",
            "gauge",
            limits.request_bytes.in_use_bytes(),
        ),
        (
            "request_bytes_overdrafts_total",
            "Frames read over --queued-max-request-bytes because frames being read held all of it.",
            "counter",
            limits.request_bytes.overdrafts_total(),
        ),
        (
            "partition_moves_failed_total",
            "Partition moves between data dirs that failed (AlterReplicaLogDirs).",
            "counter",
            MOVES_FAILED.load(Ordering::Relaxed),
        ),
        (
            "open_files",
            "File descriptors the broker has open now (segments, connections, the rest).",
            "gauge",
            crate::open_files::open_now().unwrap_or(0),
        ),
        (
            "open_files_limit",
            "The broker's open-files soft limit (raised to the hard limit at start; 0: unlimited).",
            "gauge",
            crate::open_files::soft_limit().unwrap_or(0),
        ),
        (
            "topic_creations_refused_total",
            "Topics not created: over the mutation quota, --topics-max or --partitions-max.",
            "counter",
            TOPIC_CREATIONS_REFUSED.load(Ordering::Relaxed),
        ),
    ] {
        render_scalar(&mut out, name, help, kind, value);
    }
    let on_disk = crate::disks::partitions_on_disk(context).await;
    crate::disks::render_metrics(context, &on_disk, &mut out);
    crate::disks::render_failed_moves(context, &mut out);
    let mut partitions = Vec::new();
    for shard in 0..context.router.shard_count() {
        let collected = context
            .on_shard(ShardId(shard), |owner| async move {
                owner
                    .engine
                    .partitions()
                    .into_iter()
                    .map(|(topic_partition, log)| PartitionFigures {
                        topic: topic_partition.topic.to_string(),
                        partition: topic_partition.partition,
                        end: log.high_watermark(),
                        start: log.log_start_offset(),
                        size_bytes: log.size_bytes(),
                        uncleanable: log.uncleanable(),
                        stats: log.stats(),
                        spare_ready: log.spare_ready(),
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        partitions.extend(collected.unwrap_or_default());
    }
    render_partitions(&partitions, &mut out);
    out
}

/// One partition's figures, collected from its shard when scraped.
struct PartitionFigures {
    topic: String,
    partition: ringtail_engine::PartitionIndex,
    end: ringtail_engine::Offset,
    start: ringtail_engine::Offset,
    size_bytes: u64,
    /// The cleaner gave up on the log until a restart (an unreadable transaction marker).
    uncleanable: bool,
    /// The log's counters since it was opened.
    stats: ringtail_engine::LogStats,
    /// A spare segment is allocated and waiting for the next roll.
    spare_ready: bool,
}

/// The per-partition series, and the count of uncleanable partitions (Kafka's
/// `uncleanable-partitions-count`) with a series naming each, so an operator can alert on a
/// compacted log that is no longer cleaned (only a log line said so before).
fn render_partitions(partitions: &[PartitionFigures], out: &mut String) {
    render_scalar(
        out,
        "partitions",
        "Partitions this broker holds.",
        "gauge",
        partitions.len() as u64,
    );
    out.push_str("# HELP ringtail_log_end_offset The offset the next record appended to the partition gets.\n# TYPE ringtail_log_end_offset gauge\n");
    for figures in partitions {
        let PartitionFigures {
            topic,
            partition,
            end,
            ..
        } = figures;
        let _ = writeln!(
            out,
            "ringtail_log_end_offset{{topic=\"{topic}\",partition=\"{partition}\"}} {end}"
        );
    }
    out.push_str("# HELP ringtail_log_start_offset The partition's first offset still readable.\n# TYPE ringtail_log_start_offset gauge\n");
    for figures in partitions {
        let PartitionFigures {
            topic,
            partition,
            start,
            ..
        } = figures;
        let _ = writeln!(
            out,
            "ringtail_log_start_offset{{topic=\"{topic}\",partition=\"{partition}\"}} {start}"
        );
    }
    out.push_str("# HELP ringtail_log_size_bytes The bytes of the partition's log segments on disk.\n# TYPE ringtail_log_size_bytes gauge\n");
    for figures in partitions {
        let PartitionFigures {
            topic,
            partition,
            size_bytes,
            ..
        } = figures;
        let _ = writeln!(
            out,
            "ringtail_log_size_bytes{{topic=\"{topic}\",partition=\"{partition}\"}} {size_bytes}"
        );
    }
    render_log_totals(partitions, out);
    let uncleanable: Vec<&PartitionFigures> = partitions
        .iter()
        .filter(|figures| figures.uncleanable)
        .collect();
    render_scalar(
        out,
        "uncleanable_partitions",
        "Compacted partitions the cleaner stopped cleaning until a restart (an unreadable transaction marker).",
        "gauge",
        uncleanable.len() as u64,
    );
    out.push_str("# HELP ringtail_log_uncleanable 1 for each partition the cleaner stopped cleaning (listed only then).\n# TYPE ringtail_log_uncleanable gauge\n");
    for PartitionFigures {
        topic, partition, ..
    } in uncleanable
    {
        let _ = writeln!(
            out,
            "ringtail_log_uncleanable{{topic=\"{topic}\",partition=\"{partition}\"}} 1"
        );
    }
}

/// The storage engine's counters summed over the partitions open now (each counts since its log
/// was opened, so a partition deleted or moved away takes its share with it, which Prometheus'
/// `rate` reads as a counter reset): whether preallocation is declined here, and the disk the
/// ready spares reserve.
fn render_log_totals(partitions: &[PartitionFigures], out: &mut String) {
    let sum = |count: fn(&ringtail_engine::LogStats) -> u64| -> u64 {
        partitions.iter().map(|figures| count(&figures.stats)).sum()
    };
    for (name, help, value) in [
        (
            "log_preallocations_declined_total",
            "Segments and spares preallocate asked to allocate ahead where the file system declined (in memory, past --preallocate-max-used-percent, or fallocate refused), open partitions.",
            sum(|stats| stats.preallocations_declined),
        ),
        (
            "log_spare_segments_used_total",
            "Rolls that found their next segment allocated ahead, open partitions.",
            sum(|stats| stats.spare_segments_used),
        ),
        (
            "log_spare_segments_refused_total",
            "Spare segments whose preparation failed (a full disk), open partitions.",
            sum(|stats| stats.spare_segments_refused),
        ),
        (
            "log_dropped_behind_bytes_total",
            "Bytes of active segments written back and dropped from the page cache (drop.behind.bytes), open partitions.",
            sum(|stats| stats.dropped_behind_bytes),
        ),
        (
            "log_background_seals_total",
            "Rolled segments sealed in the background (flush=none), open partitions.",
            sum(|stats| stats.background_seals),
        ),
    ] {
        render_scalar(out, name, help, "counter", value);
    }
    let ready = partitions
        .iter()
        .filter(|figures| figures.spare_ready)
        .count();
    render_scalar(
        out,
        "log_spare_segments_ready",
        "Partitions with a spare segment allocated for their next roll (each reserves segment.bytes).",
        "gauge",
        ready as u64,
    );
}

/// Appends one unlabelled series, `ringtail_<name>`, with its HELP and TYPE lines.
pub fn render_scalar(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP ringtail_{name} {help}\n# TYPE ringtail_{name} {kind}\nringtail_{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::{render_partitions, PartitionFigures};
    use ringtail_engine::{Offset, PartitionIndex};

    fn figures(partition: i32, uncleanable: bool) -> PartitionFigures {
        PartitionFigures {
            topic: "compacted".to_string(),
            partition: PartitionIndex::new(partition),
            end: Offset::new(10),
            start: Offset::ZERO,
            size_bytes: 100,
            uncleanable,
            stats: ringtail_engine::LogStats {
                preallocations_declined: 2,
                spare_segments_used: u64::from(uncleanable),
                ..Default::default()
            },
            spare_ready: uncleanable,
        }
    }

    #[test]
    fn the_engine_counters_are_summed_over_the_open_partitions() {
        let mut out = String::new();
        render_partitions(&[figures(0, false), figures(1, true)], &mut out);
        for line in [
            "\nringtail_log_preallocations_declined_total 4\n",
            "\nringtail_log_spare_segments_used_total 1\n",
            "\nringtail_log_spare_segments_refused_total 0\n",
            "\nringtail_log_background_seals_total 0\n",
            "\nringtail_log_spare_segments_ready 1\n",
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
    }

    #[test]
    fn uncleanable_partitions_are_counted_and_named() {
        let mut out = String::new();
        render_partitions(&[figures(0, false), figures(1, true)], &mut out);
        assert!(
            out.contains("\nringtail_uncleanable_partitions 1\n"),
            "{out}"
        );
        assert!(out.contains("ringtail_log_uncleanable{topic=\"compacted\",partition=\"1\"} 1\n"));
        assert!(!out.contains("ringtail_log_uncleanable{topic=\"compacted\",partition=\"0\"}"));
        assert!(out.contains("ringtail_log_size_bytes{topic=\"compacted\",partition=\"0\"} 100\n"));

        let mut out = String::new();
        render_partitions(&[figures(0, false)], &mut out);
        assert!(
            out.contains("\nringtail_uncleanable_partitions 0\n"),
            "{out}"
        );
    }
}
