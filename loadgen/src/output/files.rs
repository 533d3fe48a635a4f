//! Writing the files of one run and of a comparison into a directory. Each file is rendered to a
//! string first, so a rendering error leaves no half-written file behind.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};

use super::{charts, csv, markdown, OutputError};
use crate::report::RunReport;

/// Writes `<stem>.json` (the report as is), `<stem>.csv` (the timeline), `<stem>.md` (a summary),
/// `<stem>-latency.svg` and `<stem>-throughput.svg` into `dir` (created if missing). Returns the
/// paths written, in that order.
pub fn write_run_files(
    dir: &Path,
    stem: &str,
    report: &RunReport,
) -> Result<Vec<PathBuf>, OutputError> {
    check_stem(stem)?;
    let json = serde_json::to_string_pretty(report)?;
    let title = |what: &str| format!("{what}: {}", report.label);
    let runs = std::slice::from_ref(report);
    let contents = [
        (format!("{stem}.json"), json + "\n"),
        (format!("{stem}.csv"), csv::timeline_csv(report)),
        (format!("{stem}.md"), markdown::run_markdown(report)),
        (
            format!("{stem}-latency.svg"),
            charts::latency_svg(runs, &title("Latency"))?,
        ),
        (
            format!("{stem}-throughput.svg"),
            charts::throughput_svg(runs, &title("Throughput"))?,
        ),
    ];
    write_all(dir, &contents)
}

/// Writes a comparison of `reports` (the first is the baseline): `<stem>.csv` and `<stem>.md`
/// with one row per report, and `<stem>-latency.svg`, `<stem>-throughput.svg` with one series
/// per report, named by its label. Returns the paths written.
pub fn write_comparison(
    dir: &Path,
    stem: &str,
    reports: &[RunReport],
) -> Result<Vec<PathBuf>, OutputError> {
    check_stem(stem)?;
    if reports.is_empty() {
        return Err(OutputError::NoReports);
    }
    let contents = [
        (format!("{stem}.csv"), csv::comparison_csv(reports)),
        (format!("{stem}.md"), markdown::comparison_markdown(reports)),
        (
            format!("{stem}-latency.svg"),
            charts::latency_svg(reports, "Latency")?,
        ),
        (
            format!("{stem}-throughput.svg"),
            charts::throughput_svg(reports, "Throughput")?,
        ),
    ];
    write_all(dir, &contents)
}

fn check_stem(stem: &str) -> Result<(), OutputError> {
    if stem.is_empty() || stem.contains(['/', '\\']) || stem == "." || stem == ".." {
        return Err(OutputError::BadStem(stem.to_string()));
    }
    Ok(())
}

fn write_all(dir: &Path, contents: &[(String, String)]) -> Result<Vec<PathBuf>, OutputError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut written = Vec::with_capacity(contents.len());
    for (name, text) in contents {
        let path = dir.join(name);
        fs::write(&path, text).map_err(io_error(&path))?;
        written.push(path);
    }
    Ok(written)
}
