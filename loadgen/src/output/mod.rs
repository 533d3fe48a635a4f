//! What a run leaves behind: report files (JSON, CSV timeline, markdown summary, SVG charts), a
//! comparison of several runs, and the table printed at the end of a run.
//!
//! One concept per file: `files` writes, `csv`/`markdown`/`charts`/`terminal` render to strings
//! (no I/O, so they are tested on their text), `percentile_axis` is the chart's tail-friendly x
//! axis, `format` holds the number formats they share. MB is 10^6 bytes throughout, as in
//! [`RunReport`](crate::report::RunReport).
//!
//! What this module does *not* do: it never reads a report back or aggregates runs; the JSON is
//! the record, everything else is a view of it. (`series_chart` draws columns of any CSV, for
//! `ringtail-loadgen chart`: the soak's samples, not a run report.)
#![forbid(unsafe_code)]

mod charts;
mod csv;
mod files;
mod format;
mod markdown;
mod percentile_axis;
mod series_chart;
mod terminal;

use std::path::PathBuf;

pub use files::{write_comparison, write_run_files};
pub use series_chart::{series_svg, PanelSpec};
pub use terminal::terminal_table;

/// Why report files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("drawing a chart: {0}")]
    Chart(String),
    /// The stem names files inside `dir`; a separator would write elsewhere.
    #[error("file stem {0:?} is empty or contains a path separator")]
    BadStem(String),
    #[error("a comparison needs at least one report")]
    NoReports,
}

#[cfg(test)]
mod tests;
