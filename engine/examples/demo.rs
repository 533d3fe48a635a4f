//! The engine on its own, until the broker exists: opens a partition log in `./data` (or the
//! directory given as the first argument), appends batches of 1 KiB records under the flush policy
//! given as the second argument (`none`, `every_batch` or `<N>ms`), reads them back through a read
//! plan, and prints what recovery found and what the run took.
//!
//! `cargo run --release -p ringtail-engine --example demo -- ./data every_batch`
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use bytes::BytesMut;
use ringtail_engine::batch::encode_uniform_batch;
use ringtail_engine::{FlushPolicy, LogConfig, PartitionLog};

const BATCHES: usize = 2_000;
const RECORDS_PER_BATCH: usize = 16;
const RECORD_VALUE_BYTES: usize = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber_init();
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(args.next().unwrap_or_else(|| "./data".into()));
    let flush: FlushPolicy = args.next().unwrap_or_else(|| "none".into()).parse()?;
    let dir = data_dir.join("demo-0");
    let preallocate = std::env::var("DEMO_PREALLOCATE").map_or(true, |v| v != "0");
    let config = LogConfig {
        flush,
        preallocate,
        ..LogConfig::default()
    };
    compio::runtime::Runtime::new()?.block_on(async move {
        let (log, report) = PartitionLog::open(&dir, config).await?;
        println!(
            "opened {} ({} segments, clean shutdown: {}, recovered batches: {}, truncated bytes: {})",
            dir.display(),
            report.segments,
            report.clean_shutdown,
            report.recovery.iter().map(|(_, r)| r.batches_scanned).sum::<u64>(),
            report.recovery.iter().map(|(_, r)| r.truncated_bytes).sum::<u64>(),
        );
        let template = encode_uniform_batch(ringtail_engine::log::now_ms(), RECORDS_PER_BATCH, RECORD_VALUE_BYTES);
        let start_offset = log.high_watermark().get();
        let started = Instant::now();
        for _ in 0..BATCHES {
            log.append(BytesMut::from(&template[..]), 0).await?;
        }
        let append_secs = started.elapsed().as_secs_f64();
        let bytes = (template.len() * BATCHES) as f64;
        println!(
            "appended {BATCHES} batches ({:.1} MB) under flush={flush} in {append_secs:.3} s: {:.0} MB/s, {} fsyncs",
            bytes / 1e6,
            bytes / 1e6 / append_secs,
            log.stats().fsyncs
        );
        let plan = log.read(start_offset, 1 << 20, true).await?;
        println!(
            "a 1 MiB fetch from offset {start_offset}: {} slice(s), {} bytes, high watermark {}, log start {}",
            plan.slices.len(),
            plan.total_bytes(),
            plan.high_watermark,
            plan.log_start_offset
        );
        log.close().await?;
        Ok(())
    })
}

fn tracing_subscriber_init() {
    // The engine logs recovery through `tracing`; print it plainly.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::from_default_env()
                .add_directive("info".parse().expect("static directive")),
        )
        .try_init();
}
