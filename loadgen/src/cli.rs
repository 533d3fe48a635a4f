//! Command-line interface. The `run` flags are a contract other scripts rely on:
//! `run --bootstrap HOST:PORT --topic T --partitions N --message-bytes B --duration-s S
//! [--producers P] [--consumers C] [--rate MSGS_PER_S] [--acks 0|1|all]
//! [--compression none|lz4|zstd] [--json FILE]`; the other flags add knobs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ringtail_loadgen::report::RunReport;
use ringtail_loadgen::run::{self, CpuProbe, Environment};
use ringtail_loadgen::workload::{
    Acks, Compression, ConsumerMode, MessageSize, PartitionerKind, StartFrom, Workload,
};
use ringtail_loadgen::{omb, output};

use crate::progress::Bar;

const DEFAULT_LABEL: &str = "broker";

#[derive(Parser, Debug)]
#[command(
    name = "ringtail-loadgen",
    version,
    about = "Load generator for Kafka-compatible brokers"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce (and consume) one workload given by flags, then report.
    Run(RunArgs),
    /// Run an OpenMessaging Benchmark workload file (its `workloads/*.yaml` format). The run
    /// flags give what the file does not say (bootstrap, acks, compression, batching, outputs);
    /// --duration-s and --warmup-s, when given, replace the file's minutes.
    Omb(OmbArgs),
}

#[derive(Args, Debug, Clone)]
pub struct OmbArgs {
    /// The OMB workload file.
    file: PathBuf,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Any broker of the cluster, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic to produce to; created if missing. Repeat or give a comma list for several.
    #[arg(long, value_delimiter = ',', default_value = "ringtail-loadgen")]
    topic: Vec<String>,
    /// Partitions of each topic (when created).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Value size of each message in bytes (the smallest when --message-bytes-max is set).
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Sizes uniformly distributed in [--message-bytes, this].
    #[arg(long)]
    message_bytes_max: Option<usize>,
    /// Measured seconds of producing [default: 10].
    #[arg(long)]
    duration_s: Option<f64>,
    /// Seconds of load before measuring [default: 0].
    #[arg(long)]
    warmup_s: Option<f64>,
    /// Producers per topic.
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Consumers per subscription (0: produce only).
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Subscriptions per topic: each reads every message (fan-out).
    #[arg(long, default_value_t = 1)]
    subscriptions: u32,
    /// Consumers take fixed partitions (assign) or join a consumer group per subscription.
    #[arg(long, value_enum, default_value_t = ModeArg::Assign)]
    consumer_mode: ModeArg,
    /// Where consumers start: the log end (only this run's messages) or the log start.
    #[arg(long, value_enum, default_value_t = StartArg::Latest)]
    start_from: StartArg,
    /// Bytes per topic produced before the run, for catch-up consumers (with --start-from earliest).
    #[arg(long, default_value_t = 0)]
    backlog_bytes: u64,
    /// Target messages per second over all producers (open loop); flat out without it.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, value_enum, default_value_t = AcksArg::One)]
    acks: AcksArg,
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    /// Distinct message keys; none: messages have no key.
    #[arg(long)]
    key_cardinality: Option<u64>,
    /// Partitioner for messages (murmur2 needs --key-cardinality).
    #[arg(long, value_enum, default_value_t = PartitionerArg::Sticky)]
    partitioner: PartitionerArg,
    /// How long a batch waits to fill, in milliseconds.
    #[arg(long, default_value_t = 1.0)]
    linger_ms: f64,
    /// Largest batch in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    batch_bytes: usize,
    /// Produce requests outstanding per connection.
    #[arg(long, default_value_t = 5)]
    max_in_flight: usize,
    /// Seconds to wait for consumers to catch up after producing.
    #[arg(long, default_value_t = 60.0)]
    drain_timeout_s: f64,
    /// Pid of the broker to report CPU for; default: the local process listening on the
    /// bootstrap port, if any.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Label of this run in reports (broker, layout).
    #[arg(long, default_value = DEFAULT_LABEL)]
    label: String,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every report file here: <label>.json, .csv, .md, -latency.svg, -throughput.svg.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum AcksArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    #[value(name = "all", alias = "-1")]
    All,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum CompressionArg {
    None,
    Lz4,
    Zstd,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum PartitionerArg {
    RoundRobin,
    Sticky,
    Murmur2,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ModeArg {
    Assign,
    Group,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum StartArg {
    Latest,
    Earliest,
}

impl RunArgs {
    fn workload(&self) -> Workload {
        Workload {
            bootstrap: self.bootstrap.clone(),
            topics: self.topic.clone(),
            partitions: self.partitions,
            message_size: match self.message_bytes_max {
                Some(max_bytes) => MessageSize::Uniform {
                    min_bytes: self.message_bytes,
                    max_bytes,
                },
                None => MessageSize::Fixed {
                    bytes: self.message_bytes,
                },
            },
            key_cardinality: self.key_cardinality,
            partitioner: match self.partitioner {
                PartitionerArg::RoundRobin => PartitionerKind::RoundRobin,
                PartitionerArg::Sticky => PartitionerKind::Sticky,
                PartitionerArg::Murmur2 => PartitionerKind::Murmur2,
            },
            producers: self.producers,
            subscriptions: self.subscriptions,
            consumers_per_subscription: self.consumers,
            consumer_mode: match self.consumer_mode {
                ModeArg::Assign => ConsumerMode::Assign,
                ModeArg::Group => ConsumerMode::Group,
            },
            start_from: match self.start_from {
                StartArg::Latest => StartFrom::Latest,
                StartArg::Earliest => StartFrom::Earliest,
            },
            backlog_bytes: self.backlog_bytes,
            duration_s: self.duration_s.unwrap_or(10.0),
            warmup_s: self.warmup_s.unwrap_or(0.0),
            rate_msgs_per_s: self.rate,
            acks: match self.acks {
                AcksArg::Zero => Acks::None,
                AcksArg::One => Acks::Leader,
                AcksArg::All => Acks::All,
            },
            compression: match self.compression {
                CompressionArg::None => Compression::None,
                CompressionArg::Lz4 => Compression::Lz4,
                CompressionArg::Zstd => Compression::Zstd,
            },
            linger_ms: self.linger_ms,
            batch_bytes: self.batch_bytes,
            max_in_flight: self.max_in_flight,
            drain_timeout_s: self.drain_timeout_s,
            broker_pid: self.broker_pid,
        }
    }
}

struct NoCpu;

impl CpuProbe for NoCpu {
    fn broker_cpu_s(&self) -> Option<f64> {
        None
    }
    fn own_cpu_s(&self) -> f64 {
        0.0
    }
}

pub fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => {
            let workload = args.workload();
            finish(&args, &run_one(&workload, &args.label, args.quiet)?)
        }
        Command::Omb(omb_args) => {
            let args = &omb_args.run;
            let yaml = std::fs::read_to_string(&omb_args.file)
                .with_context(|| format!("reading {}", omb_args.file.display()))?;
            let parsed = omb::workload_from_omb(&yaml, &args.workload())
                .with_context(|| format!("reading OMB workload {}", omb_args.file.display()))?;
            for warning in &parsed.warnings {
                eprintln!("omb: {warning}");
            }
            let mut workload = parsed.workload;
            if let Some(duration_s) = args.duration_s {
                workload.duration_s = duration_s;
            }
            if let Some(warmup_s) = args.warmup_s {
                workload.warmup_s = warmup_s;
            }
            let label = if args.label == DEFAULT_LABEL {
                parsed.name
            } else {
                args.label.clone()
            };
            finish(args, &run_one(&workload, &label, args.quiet)?)
        }
    }
}

/// Prints the summary table and writes the files asked for.
fn finish(args: &RunArgs, report: &RunReport) -> Result<()> {
    println!("{}", output::terminal_table(report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &args.out_dir {
        let stem = file_stem(&report.label);
        for path in output::write_run_files(dir, &stem, report)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// A label as a file name: letters, digits, '-', '_' and '.' kept, anything else '-'.
fn file_stem(label: &str) -> String {
    label
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "-_.".contains(ch) {
                ch
            } else {
                '-'
            }
        })
        .collect()
}

fn run_one(workload: &Workload, label: &str, quiet: bool) -> Result<RunReport> {
    let bar = Bar::new();
    let silent = run::Silent;
    let environment = Environment {
        label: label.to_string(),
        machine: Default::default(),
        cpu: &NoCpu,
        progress: if quiet { &silent } else { &bar },
    };
    let result = run::run(workload, &environment);
    bar.finish();
    result.context("the run failed")
}
