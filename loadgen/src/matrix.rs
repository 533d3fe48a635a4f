//! `ringtail-loadgen matrix`: every selected scenario on every selected broker and disk layout,
//! each run against a broker started fresh for it, results written to
//! `<results>/<scenario>/<broker>-<layout>.*` with a comparison per scenario and an index in
//! `<results>/README.md`. What the machine cannot run (a missing peer binary, no loop devices)
//! is skipped and listed, never silently left out.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::broker_process::{self, BrokerKind, BrokerProcess, BrokerSpec};
use crate::cpu;
use crate::layout::{self, Layout, LayoutError};
use crate::machine;
use crate::output;
use crate::report::RunReport;
use crate::run::{self, Environment, Progress};
use crate::scenario::{Scenario, MAX_PRODUCE};

/// What the matrix runs and where it writes.
pub struct MatrixOptions<'a> {
    pub scenarios: Vec<Scenario>,
    pub layouts: Vec<Layout>,
    pub brokers: Vec<BrokerKind>,
    /// Binaries to use instead of each broker's default location.
    pub binaries: BTreeMap<String, PathBuf>,
    /// Flags every Ringtail broker of the matrix gets, after the scenario's own (a setting
    /// measured across the whole matrix, e.g. `--write-direct true`).
    pub ringtail_args: Vec<String>,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Caps each scenario's backlog (catch-up), so that short matrices stay short.
    pub backlog_bytes_max: u64,
    pub results_dir: PathBuf,
    /// Where loop images and mounts are made; on a real disk.
    pub work_dir: PathBuf,
    /// Size of each tmpfs or loop disk.
    pub disk_bytes: u64,
    pub progress: &'a dyn Progress,
}

/// One run of the matrix.
pub struct MatrixRun {
    pub scenario: String,
    pub label: String,
    pub report: RunReport,
}

/// Something the matrix did not run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

pub struct MatrixOutcome {
    pub runs: Vec<MatrixRun>,
    pub skipped: Vec<Skipped>,
    /// Runs that failed (the broker or the run reported an error); the matrix goes on.
    pub failed: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("writing results: {0}")]
    Output(#[from] output::OutputError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const STOP_GRACE: Duration = Duration::from_secs(20);

/// Each run's broker configuration, beside its report: `<scenario>/<broker>-<layout>-broker.txt`.
const BROKER_CONFIG_SUFFIX: &str = "-broker.txt";

/// How the broker of a run was configured, for the reader of its report: the command line, and
/// for Kafka the JVM options and the effective properties file (the committed
/// config/kafka/server.properties plus the per-run lines kafka-peer.sh appended).
fn broker_config_text(spec: &BrokerSpec) -> String {
    let mut text = format!(
        "# {} as started by ringtail-loadgen matrix (PORT is picked per run)
{} {}
",
        spec.kind,
        spec.binary.display(),
        spec.args(0)
            .join(" ")
            .replace("127.0.0.1:0", "127.0.0.1:PORT"),
    );
    if spec.kind == BrokerKind::Kafka {
        // kafka-peer.sh writes the JVM options as a comment at the end of the file.
        text.push('\n');
        let properties = spec.data_dirs[0].join("server.properties");
        match fs::read_to_string(&properties) {
            Ok(body) => text.push_str(&body),
            Err(error) => text.push_str(&format!("# {}: {error}\n", properties.display())),
        }
    }
    text
}

/// Runs the matrix. Per layout and broker, scenarios run in order, each on a fresh broker with
/// an empty data dir; rates derived from max-produce use that broker's and layout's result.
pub fn run_matrix(options: &MatrixOptions<'_>) -> Result<MatrixOutcome, MatrixError> {
    let mut outcome = MatrixOutcome {
        runs: Vec::new(),
        skipped: Vec::new(),
        failed: Vec::new(),
    };
    let machine = machine::current();
    for layout in &options.layouts {
        for broker in &options.brokers {
            if !broker.uses_data_dir() && layout.disk != layout::DiskKind::Fs {
                outcome.skipped.push(Skipped {
                    what: format!("{}/{}", broker.name(), layout.name),
                    reason: "keeps its data in memory: one layout is enough".to_string(),
                });
                continue;
            }
            let binary = options
                .binaries
                .get(broker.name())
                .cloned()
                .unwrap_or_else(|| broker.default_binary());
            if let Err(error) = broker_process::locate(*broker, Some(&binary)) {
                outcome.skipped.push(Skipped {
                    what: format!("{} (every layout)", broker.name()),
                    reason: error.to_string(),
                });
                continue;
            }
            let target = Target {
                layout,
                broker: *broker,
                binary: &binary,
                machine: &machine,
            };
            run_scenarios(options, &target, &mut outcome)?;
        }
    }
    write_comparisons(options, &outcome)?;
    write_index(&options.results_dir, &outcome)?;
    Ok(outcome)
}

/// One broker on one layout: what every scenario of a matrix runs against.
struct Target<'a> {
    layout: &'a Layout,
    broker: BrokerKind,
    binary: &'a Path,
    machine: &'a crate::report::Machine,
}

/// Runs the scenarios in order on `target`, each on a freshly prepared layout; stops when the
/// layout cannot be prepared on this machine.
fn run_scenarios(
    options: &MatrixOptions<'_>,
    target: &Target<'_>,
    outcome: &mut MatrixOutcome,
) -> Result<(), MatrixError> {
    let (broker, layout) = (target.broker, target.layout);
    let mut max_msgs_per_s = None;
    for scenario in &options.scenarios {
        let label = format!("{}/{}", broker.name(), layout.name);
        let what = format!("{}: {label}", scenario.name);
        let rate = match scenario.rate_msgs_per_s(max_msgs_per_s) {
            Ok(rate) => rate,
            Err(reason) => {
                outcome.skipped.push(Skipped { what, reason });
                continue;
            }
        };
        if scenario.workload.move_partition.is_some() && layout.data_dirs < 2 {
            outcome.skipped.push(Skipped {
                what,
                reason: format!(
                    "moves between data dirs: needs a layout with two ({})",
                    layout::JBOD
                ),
            });
            continue;
        }
        let prepared = match layout::prepare(layout, &options.work_dir, options.disk_bytes) {
            Ok(prepared) => prepared,
            Err(LayoutError::Skipped { reason }) => {
                outcome.skipped.push(Skipped {
                    what: format!("layout {}", layout.name),
                    reason: reason.to_string(),
                });
                return Ok(());
            }
            Err(error) => {
                outcome.failed.push(Skipped {
                    what,
                    reason: error.to_string(),
                });
                continue;
            }
        };
        let scenario_dir = options.results_dir.join(&scenario.name);
        let stem = format!("{}-{}", broker.name(), layout.name);
        let mut spec = broker_spec(target, scenario, &prepared, &scenario_dir);
        if target.broker == BrokerKind::Ringtail {
            spec.extra_args
                .extend(options.ringtail_args.iter().cloned());
        }
        remove_stale_files(&scenario_dir, &stem);
        let result = run_one(options, scenario, &spec, rate, &label, target.machine);
        // Read before teardown: Kafka's effective properties live in its data dir.
        let broker_config = broker_config_text(&spec);
        if let Err(error) = prepared.teardown() {
            outcome.failed.push(Skipped {
                what: format!("tearing down {}", layout.name),
                reason: error.to_string(),
            });
        }
        match result {
            Ok(report) => {
                if scenario.name == MAX_PRODUCE {
                    max_msgs_per_s = Some(report.produce.msgs_per_s);
                }
                output::write_run_files(&scenario_dir, &stem, &report)?;
                let config_path = scenario_dir.join(format!("{stem}{BROKER_CONFIG_SUFFIX}"));
                fs::write(&config_path, broker_config).map_err(io_error(&config_path))?;
                outcome.runs.push(MatrixRun {
                    scenario: scenario.name.clone(),
                    label,
                    report,
                });
            }
            Err(reason) => outcome.failed.push(Skipped { what, reason }),
        }
    }
    Ok(())
}

/// How `target`'s broker starts for `scenario` on the prepared layout.
fn broker_spec(
    target: &Target<'_>,
    scenario: &Scenario,
    prepared: &layout::PreparedLayout,
    scenario_dir: &Path,
) -> BrokerSpec {
    let broker = target.broker;
    let mut spec = BrokerSpec::new(
        broker,
        target.binary.to_path_buf(),
        prepared.data_dirs(),
        scenario_dir.join("logs"),
    );
    match broker {
        BrokerKind::Ringtail => spec
            .extra_args
            .extend(scenario.ringtail_args.iter().cloned()),
        BrokerKind::Kafka => spec.extra_args.extend(scenario.kafka_args.iter().cloned()),
        _ => {}
    }
    // Layout flags are Ringtail's (tansu takes them as they are); Kafka's layout is only where
    // its log dir lives.
    if broker != BrokerKind::Kafka {
        spec.extra_args
            .extend(prepared.broker_args().iter().cloned());
    }
    spec
}

/// Removes a run's earlier report files: a failed run must not leave an earlier run's report
/// looking current.
fn remove_stale_files(scenario_dir: &Path, stem: &str) {
    for suffix in [
        ".json",
        ".csv",
        ".md",
        "-latency.svg",
        "-throughput.svg",
        BROKER_CONFIG_SUFFIX,
    ] {
        let _ = fs::remove_file(scenario_dir.join(format!("{stem}{suffix}")));
    }
}

fn run_one(
    options: &MatrixOptions<'_>,
    scenario: &Scenario,
    spec: &BrokerSpec,
    rate: Option<f64>,
    label: &str,
    machine: &crate::report::Machine,
) -> Result<RunReport, String> {
    let broker = BrokerProcess::start(spec).map_err(|error| error.to_string())?;
    let workload = crate::workload::Workload {
        bootstrap: broker.bootstrap(),
        topics: vec![format!("matrix-{}", scenario.name)],
        duration_s: options.duration_s,
        warmup_s: options.warmup_s,
        rate_msgs_per_s: rate,
        backlog_bytes: scenario
            .workload
            .backlog_bytes
            .min(options.backlog_bytes_max),
        broker_pid: Some(broker.pid()),
        evict_backlog_dirs: if scenario.evict_backlog {
            spec.data_dirs.clone()
        } else {
            Vec::new()
        },
        ..scenario.workload.clone()
    };
    let probe = cpu::ProcessCpu {
        broker_pid: Some(broker.pid()),
    };
    let environment = Environment {
        label: label.to_string(),
        machine: machine.clone(),
        cpu: &probe,
        progress: options.progress,
    };
    let result = run::run(&workload, &environment).map_err(|error| error.to_string());
    let log = broker.log_path().to_path_buf();
    match broker.stop(STOP_GRACE) {
        Ok(broker_process::StopOutcome::Terminated { status, .. })
            if spec.kind.stopped_cleanly(status) => {}
        Ok(other) => {
            return Err(format!(
                "the broker did not stop cleanly ({other:?}); log: {}",
                log.display()
            ))
        }
        Err(error) => return Err(error.to_string()),
    }
    result.map(|mut report| {
        if let Some(moved) = report.partition_move.as_mut() {
            moved.switch_pause_ms = fs::read_to_string(&log)
                .ok()
                .and_then(|text| last_switch_pause_ms(&text));
        }
        report
    })
}

/// The last switch pause Ringtail logged for a partition move (`switch_pause_ms=N`): the broker
/// measures it, the client only sees its effect on latency.
fn last_switch_pause_ms(log: &str) -> Option<u64> {
    const FIELD: &str = "switch_pause_ms=";
    let at = log.rfind(FIELD)? + FIELD.len();
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Rewrites each run scenario's comparison from every report in its directory, so brokers or
/// layouts measured by separate matrix invocations (say, a peer run later) share one comparison.
/// The baseline (first row) is Ringtail on the ordinary filesystem when present.
fn write_comparisons(
    options: &MatrixOptions<'_>,
    outcome: &MatrixOutcome,
) -> Result<(), MatrixError> {
    let on_disk = reports_on_disk(&options.results_dir)?;
    for scenario in &options.scenarios {
        if !outcome.runs.iter().any(|run| run.scenario == scenario.name) {
            continue;
        }
        let reports: Vec<RunReport> = on_disk
            .iter()
            .filter(|(name, _, _)| *name == scenario.name)
            .map(|(_, _, report)| report.clone())
            .collect();
        output::write_comparison(
            &options.results_dir.join(&scenario.name),
            "comparison",
            &reports,
        )?;
    }
    Ok(())
}

/// Every run report under `<results>/<scenario>/`, as (scenario, file stem, report), in matrix
/// order: scenarios as [`crate::scenario::all`] lists them, then brokers as
/// [`BrokerKind::standard`], then layouts as [`Layout::standard`].
fn reports_on_disk(results_dir: &Path) -> Result<Vec<(String, String, RunReport)>, MatrixError> {
    let mut reports: Vec<(String, String, RunReport)> = Vec::new();
    for entry in fs::read_dir(results_dir).map_err(io_error(results_dir))? {
        let dir = entry.map_err(io_error(results_dir))?.path();
        if !dir.is_dir() {
            continue;
        }
        let Ok(files) = fs::read_dir(&dir) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_some_and(|ext| ext == "json") {
                let Ok(text) = fs::read_to_string(&path) else {
                    continue;
                };
                if let Ok(report) = serde_json::from_str::<RunReport>(&text) {
                    let scenario = dir
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    let stem = path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    reports.push((scenario, stem, report));
                }
            }
        }
    }
    let scenarios: Vec<String> = crate::scenario::all().into_iter().map(|s| s.name).collect();
    let scenario_names: Vec<&str> = scenarios.iter().map(String::as_str).collect();
    let brokers: Vec<&str> = BrokerKind::standard()
        .iter()
        .map(BrokerKind::name)
        .collect();
    let layouts: Vec<String> = Layout::standard().into_iter().map(|l| l.name).collect();
    let layout_names: Vec<&str> = layouts.iter().map(String::as_str).collect();
    let rank =
        |known: &[&str], name: &str| known.iter().position(|k| *k == name).unwrap_or(known.len());
    reports.sort_by_key(|(scenario, _, report)| {
        let (broker, layout) = report.label.split_once('/').unwrap_or((&report.label, ""));
        (
            rank(&scenario_names, scenario),
            scenario.clone(),
            rank(&brokers, broker),
            rank(&layout_names, layout),
            report.label.clone(),
        )
    });
    Ok(reports)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MatrixError {
    let path = path.to_path_buf();
    move |source| MatrixError::Io { path, source }
}

const INDEX_BEGIN: &str = "<!-- matrix:begin (written by ringtail-loadgen matrix) -->";
const INDEX_END: &str = "<!-- matrix:end -->";

/// Writes the matrix index into `<results>/README.md` between markers, keeping what is written
/// around them. The index lists every scenario directory's reports on disk (so a matrix that
/// reran one scenario keeps the others) and what this run skipped or failed.
fn write_index(results_dir: &Path, outcome: &MatrixOutcome) -> Result<(), MatrixError> {
    let reports = reports_on_disk(results_dir)?;
    let mut index = format!("{INDEX_BEGIN}\n## Matrix results\n\n");
    index.push_str(
        "Made by `ringtail-loadgen matrix` (see each scenario's `comparison.md`; MB = 10^6 bytes; \
         broker and loadgen share the machine's cores).\n\n\
         | scenario | broker/layout | produce MB/s | produce p99 ms | consume MB/s | e2e p99 ms | broker CPU s | MB per broker CPU-s | when | commit |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for (scenario, stem, report) in &reports {
        let ms = |us: u64| us as f64 / 1000.0;
        index.push_str(&format!(
            "| [{scenario}]({scenario}/comparison.md) | [{}]({scenario}/{stem}.md){} | {:.1} | {:.2} | {:.1} | {:.2} | {} | {} | {} | {} |\n",
            report.label,
            if report.drain_timed_out { " (drain timed out: consumers fell behind)" } else { "" },
            report.produce.mb_per_s,
            ms(report.produce.latency_us.p99),
            report.consume.mb_per_s,
            ms(report.consume.e2e_latency_us.p99),
            report.broker_cpu_s.map_or("n/a".to_string(), |cpu| format!("{cpu:.2}")),
            report
                .produce_mb_per_broker_cpu_s
                .map_or("n/a".to_string(), |mb| format!("{mb:.0}")),
            report.started_at,
            report.machine.loadgen_commit,
        ));
    }
    if !outcome.skipped.is_empty() || !outcome.failed.is_empty() {
        index.push_str("\nNot run in the last matrix:\n\n");
        for skip in &outcome.skipped {
            index.push_str(&format!("- skipped {}: {}\n", skip.what, skip.reason));
        }
        for failure in &outcome.failed {
            index.push_str(&format!("- FAILED {}: {}\n", failure.what, failure.reason));
        }
    }
    index.push_str(INDEX_END);
    index.push('\n');
    let readme = results_dir.join("README.md");
    let existing = fs::read_to_string(&readme).unwrap_or_default();
    let updated = match (existing.find(INDEX_BEGIN), existing.find(INDEX_END)) {
        (Some(begin), Some(end)) if end > begin => {
            let after = &existing[end + INDEX_END.len()..];
            format!(
                "{}{index}{}",
                &existing[..begin],
                after.strip_prefix('\n').unwrap_or(after)
            )
        }
        _ if existing.is_empty() => format!("# Results\n\n{index}"),
        _ => format!(
            "{}\n{index}",
            existing.trim_end_matches('\n').to_string() + "\n"
        ),
    };
    fs::write(&readme, updated).map_err(io_error(&readme))
}

#[cfg(test)]
mod switch_pause_tests {
    use super::*;

    #[test]
    fn the_last_logged_switch_pause_is_read() {
        // The broker logs one line per move; the run moved once, and a later line wins.
        let log = "INFO partition moved topic=a switch_pause_ms=12 x\nINFO partition moved switch_pause_ms=7\n";
        assert_eq!(last_switch_pause_ms(log), Some(7));
        assert_eq!(last_switch_pause_ms("nothing moved"), None);
        assert_eq!(last_switch_pause_ms("switch_pause_ms="), None);
    }
}
