//! Command-line interface. The `run` flags are a contract other scripts rely on:
//! `run --bootstrap HOST:PORT --topic T --partitions N --message-bytes B --duration-s S
//! [--producers P] [--consumers C] [--rate MSGS_PER_S] [--acks 0|1|all]
//! [--compression none|lz4|zstd] [--json FILE]`; the other flags add knobs.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ringtail_loadgen::broker_process::BrokerKind;
use ringtail_loadgen::layout::Layout;
use ringtail_loadgen::matrix::{self, MatrixOptions};
use ringtail_loadgen::report::RunReport;
use ringtail_loadgen::run::{self, Environment};
use ringtail_loadgen::workload::{
    Acks, Compression, ConsumerMode, MessageSize, PartitionerKind, StartFrom, Workload,
};
use ringtail_loadgen::{cpu, machine, omb, output, scenario};

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
    /// Run named scenarios on each broker and disk layout (starting each broker itself) and
    /// write results/<scenario>/… plus an index in results/README.md.
    Matrix(MatrixArgs),
    /// Draw columns of CSV files as stacked time-series panels in one SVG (scripts/soak.sh's
    /// chart): each --panel is FILE:X_COLUMN:Y_COLUMN[,Y_COLUMN...].
    Chart(ChartArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ChartArgs {
    /// FILE:X_COLUMN:Y_COLUMN[,Y_COLUMN...], one panel each, top to bottom (repeatable).
    #[arg(long, required = true)]
    panel: Vec<String>,
    #[arg(long, default_value = "")]
    title: String,
    /// The SVG file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct MatrixArgs {
    /// Scenarios to run, comma-separated (default: all; see --list).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Disk layouts: fs, tmpfs, xfs-loop, ext4-loop (default: all four), and jbod (two data
    /// dirs on two XFS loop images, or two tmpfs mounts without loop devices).
    #[arg(long, value_delimiter = ',')]
    layouts: Vec<Layout>,
    /// Brokers: ringtail, kafka (Apache Kafka via scripts/kafka-peer.sh), tansu (its sqlite
    /// storage), tansu-memory (default: ringtail, kafka, tansu).
    #[arg(long, value_delimiter = ',')]
    brokers: Vec<BrokerKind>,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 20.0)]
    duration_s: f64,
    /// Warm-up seconds of each run.
    #[arg(long, default_value_t = 3.0)]
    warmup_s: f64,
    /// Largest backlog a catch-up scenario builds, in bytes.
    #[arg(long, default_value_t = 1_000_000_000)]
    backlog_bytes_max: u64,
    #[arg(long, default_value = "results")]
    results_dir: PathBuf,
    /// Where loop images and mounts go (a real disk, not tmpfs).
    #[arg(long, default_value = "/var/tmp/ringtail-matrix")]
    work_dir: PathBuf,
    /// Size of each tmpfs or loop disk in bytes.
    #[arg(long, default_value_t = 8 << 30)]
    disk_bytes: u64,
    /// The ringtail binary (default: this workspace's release build).
    #[arg(long)]
    ringtail_bin: Option<PathBuf>,
    /// A flag for every Ringtail broker of the matrix, after the scenario's own; repeat it for
    /// several (`--ringtail-arg=--write-direct --ringtail-arg=true`).
    #[arg(long = "ringtail-arg", value_name = "ARG", allow_hyphen_values = true)]
    ringtail_args: Vec<String>,
    /// The tansu binary (default: ~/.cache/ringtail/tansu/bin/tansu).
    #[arg(long)]
    tansu_bin: Option<PathBuf>,
    /// List scenarios, layouts and brokers and what this machine would skip, then exit.
    #[arg(long)]
    list: bool,
    #[arg(long)]
    quiet: bool,
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
    /// A directory of the broker's data (repeatable): its files are fsynced and dropped from the
    /// page cache once the backlog is built, so catch-up consumers read from disk.
    #[arg(long = "evict-backlog-dir", value_name = "DIR")]
    evict_backlog_dirs: Vec<std::path::PathBuf>,
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
    /// Largest record bytes a consumer's Fetch asks per partition (Kafka's
    /// max.partition.fetch.bytes, whose default is 1 MiB); the loadgen's own default is 8 MiB,
    /// for fewer, larger round trips.
    #[arg(long, default_value_t = ringtail_loadgen::workload::FETCH_PARTITION_MAX_BYTES_DEFAULT, value_parser = clap::value_parser!(i32).range(1..))]
    fetch_partition_max_bytes: i32,
    /// Send a consumer's next Fetch before reading the records of the last one (`true`), as the
    /// Java consumer and librdkafka fetch ahead; `false` waits, one Fetch at a time per broker.
    #[arg(long, value_name = "true|false", default_value_t = true, action = clap::ArgAction::Set)]
    fetch_ahead: bool,
    /// The consumers' threads' scheduling priority: `normal`, or `idle` (SCHED_IDLE, and a
    /// yield of the core after each 256 KiB received or checked: they run only when no producer
    /// or broker thread wants a core; for clients on the broker's machine that stand for
    /// clients on others).
    #[arg(long, value_enum, default_value_t = ringtail_loadgen::workload::ConsumerPriority::Normal)]
    consumer_priority: ringtail_loadgen::workload::ConsumerPriority,
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
            evict_backlog_dirs: self.evict_backlog_dirs.clone(),
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
            fetch_partition_max_bytes: self.fetch_partition_max_bytes,
            fetch_ahead: self.fetch_ahead,
            consumer_priority: self.consumer_priority,
            drain_timeout_s: self.drain_timeout_s,
            broker_pid: self.broker_pid,
            move_partition: None,
        }
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
        Command::Matrix(args) => run_matrix(&args),
        Command::Chart(args) => draw_chart(&args),
    }
}

fn draw_chart(args: &ChartArgs) -> Result<()> {
    let mut panels = Vec::new();
    for spec in &args.panel {
        let mut parts = spec.rsplitn(3, ':');
        let (Some(y), Some(x), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("--panel {spec:?}: want FILE:X_COLUMN:Y_COLUMN[,Y_COLUMN...]");
        };
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let spec = output::PanelSpec {
            x_column: x.to_string(),
            y_columns: y.split(',').map(str::to_string).collect(),
        };
        panels.push((text, spec));
    }
    let svg = output::series_svg(&panels, &args.title)?;
    std::fs::write(&args.out, svg).with_context(|| format!("writing {}", args.out.display()))
}

fn run_matrix(args: &MatrixArgs) -> Result<()> {
    let scenarios = scenario::select(&args.scenarios).map_err(anyhow::Error::msg)?;
    let layouts = if args.layouts.is_empty() {
        Layout::standard()
    } else {
        args.layouts.clone()
    };
    let brokers = if args.brokers.is_empty() {
        BrokerKind::standard()
    } else {
        args.brokers.clone()
    };
    if args.list {
        list_matrix(&scenarios, &layouts, &brokers);
        return Ok(());
    }
    let mut binaries = std::collections::BTreeMap::new();
    if let Some(path) = &args.ringtail_bin {
        binaries.insert(BrokerKind::Ringtail.name().to_string(), path.clone());
    }
    if let Some(path) = &args.tansu_bin {
        for broker in &brokers {
            if broker.name().starts_with("tansu") {
                binaries.insert(broker.name().to_string(), path.clone());
            }
        }
    }
    let bar = Bar::new();
    let silent = run::Silent;
    let options = MatrixOptions {
        scenarios,
        layouts,
        brokers,
        binaries,
        ringtail_args: args.ringtail_args.clone(),
        duration_s: args.duration_s,
        warmup_s: args.warmup_s,
        backlog_bytes_max: args.backlog_bytes_max,
        results_dir: args.results_dir.clone(),
        work_dir: args.work_dir.clone(),
        disk_bytes: args.disk_bytes,
        progress: if args.quiet { &silent } else { &bar },
    };
    std::fs::create_dir_all(&args.results_dir)
        .with_context(|| format!("creating {}", args.results_dir.display()))?;
    let outcome = matrix::run_matrix(&options)?;
    bar.finish();
    print_matrix_outcome(&outcome);
    println!("results in {}", args.results_dir.display());
    if outcome.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} run(s) of the matrix failed", outcome.failed.len())
    }
}

/// `matrix --list`: the scenarios, and whether each layout and broker is available here.
fn list_matrix(scenarios: &[scenario::Scenario], layouts: &[Layout], brokers: &[BrokerKind]) {
    for scenario in scenarios {
        println!("scenario {:<20} {}", scenario.name, scenario.description);
    }
    for layout in layouts {
        match ringtail_loadgen::layout::check_machine(layout.disk) {
            Ok(()) => println!("layout   {:<20} available", layout.name),
            Err(reason) => println!("layout   {:<20} skipped: {reason}", layout.name),
        }
    }
    for broker in brokers {
        match ringtail_loadgen::broker_process::locate(*broker, None) {
            Ok(path) => println!("broker   {:<20} {}", broker.name(), path.display()),
            Err(error) => println!("broker   {:<20} {error}", broker.name()),
        }
    }
}

/// One line per run of a matrix, then what was skipped and what failed.
fn print_matrix_outcome(outcome: &matrix::MatrixOutcome) {
    for run in &outcome.runs {
        println!(
            "{:<20} {:<24} produce {:>8.1} MB/s p99 {:>8.2} ms | consume {:>8.1} MB/s e2e p99 {:>8.2} ms",
            run.scenario,
            run.label,
            run.report.produce.mb_per_s,
            run.report.produce.latency_us.p99 as f64 / 1000.0,
            run.report.consume.mb_per_s,
            run.report.consume.e2e_latency_us.p99 as f64 / 1000.0,
        );
    }
    for skip in &outcome.skipped {
        println!("skipped {}: {}", skip.what, skip.reason);
    }
    for failure in &outcome.failed {
        println!("FAILED {}: {}", failure.what, failure.reason);
    }
}

/// Prints the summary table and writes the files asked for.
fn finish(args: &RunArgs, report: &RunReport) -> Result<()> {
    println!("{}", output::terminal_table(report));
    if report.drain_timed_out {
        eprintln!(
            "warning: consumers had not caught up when the drain timeout ran out \
             (consumed {} of {} produced); raise --drain-timeout-s",
            report.consume.messages, report.produce.messages
        );
    }
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

/// The pid of the process listening on the bootstrap port when the bootstrap is this machine.
fn local_listener(bootstrap: &str) -> Option<u32> {
    use std::net::ToSocketAddrs;
    let address = bootstrap.to_socket_addrs().ok()?.next()?;
    if !address.ip().is_loopback() {
        return None;
    }
    cpu::pid_listening_on(address.port()).ok().flatten()
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
    let broker_pid = workload
        .broker_pid
        .or_else(|| local_listener(&workload.bootstrap));
    let environment = Environment {
        label: label.to_string(),
        machine: machine::current(),
        cpu: &cpu::ProcessCpu { broker_pid },
        progress: if quiet { &silent } else { &bar },
    };
    let result = run::run(workload, &environment);
    bar.finish();
    result.context("the run failed")
}
