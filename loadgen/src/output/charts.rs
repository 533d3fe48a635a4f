//! SVG charts with plotters: latency percentile curves and throughput over time, for one run or
//! one series per run. Rendered into a `String` (the caller writes the file), so rendering has no
//! I/O and a test can look at the text.
//!
//! Fonts: plotters is built without "ttf"/"ab_glyph". Its SVG backend writes labels as `<text>`
//! elements that the viewer renders, and lays them out with a built-in size estimate, so nothing
//! here needs fontconfig or a font file (a fresh Debian and CI build and run it as is).

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::format::{interval_s, mb_per_s};
use super::percentile_axis::PercentileAxis;
use super::OutputError;
use crate::report::{PercentileCurve, RunReport};

const SIZE_PX: (u32, u32) = (1000, 600);
/// The legend's column, right of the plot: outside the plot it cannot cover a curve, whatever
/// shape the data takes.
const LEGEND_WIDTH_PX: u32 = 270;
/// Vertical distance between legend entries.
const LEGEND_ROW_PX: i32 = 22;
/// Lowest latency the log axis shows, in ms (1 µs, the histogram's resolution).
const LATENCY_MS_MIN: f64 = 0.001;
/// Series colours (matplotlib's "tab10"): runs keep their colour across both charts.
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line of a chart. Produce and consume lines of one run share a colour; consume is dashed.
pub(super) struct Line {
    pub(super) label: String,
    pub(super) points: Vec<(f64, f64)>,
    pub(super) color: RGBColor,
    pub(super) dashed: bool,
}

/// A linear f64 axis with mesh lines and labels at given positions only (the percentile ticks).
/// plotters' own `WithKeyPoints` over f64 cannot take a label formatter, hence this.
struct TickedAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Names series by direction alone for one run, and by run then direction for several.
fn series_label(reports: &[RunReport], report: &RunReport, direction: &str) -> String {
    if reports.len() == 1 {
        direction.to_string()
    } else {
        format!("{} {direction}", report.label)
    }
}

/// Latency (ms, log scale) against percentile, produce and end-to-end for each report.
pub(crate) fn latency_svg(reports: &[RunReport], title: &str) -> Result<String, OutputError> {
    let curves: Vec<&PercentileCurve> = reports
        .iter()
        .flat_map(|report| [&report.produce_latency_curve, &report.e2e_latency_curve])
        .collect();
    let axis = PercentileAxis::fitted(&curves);
    let mut lines = Vec::new();
    for (index, report) in reports.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let to_points = |curve: &PercentileCurve| -> Vec<(f64, f64)> {
            curve
                .iter()
                .map(|(percentile, us)| {
                    (
                        axis.x(*percentile),
                        (*us as f64 / 1000.0).max(LATENCY_MS_MIN),
                    )
                })
                .collect()
        };
        // A curve of a direction the run did not measure (end-to-end in a produce-only
        // scenario) is all zeros: left out, not drawn along the axis floor as if 1 µs.
        let measured = |curve: &PercentileCurve| curve.iter().any(|(_, us)| *us > 0);
        if measured(&report.produce_latency_curve) {
            lines.push(Line {
                label: series_label(reports, report, "produce"),
                points: to_points(&report.produce_latency_curve),
                color,
                dashed: false,
            });
        }
        if measured(&report.e2e_latency_curve) {
            lines.push(Line {
                label: series_label(reports, report, "end-to-end"),
                points: to_points(&report.e2e_latency_curve),
                color,
                dashed: true,
            });
        }
    }
    let (y_min, y_max) = latency_bounds_ms(&lines);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE_PX).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let (plot, legend) = root.split_horizontally(SIZE_PX.0 - LEGEND_WIDTH_PX);
        let mut chart = chart_builder(&plot, title)
            .build_cartesian_2d(
                TickedAxis {
                    inner: (0.0..axis.x_max).into(),
                    ticks: axis.tick_positions(),
                },
                (y_min / 1.5..y_max * 1.5).log_scale(),
            )
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| axis.label(*x))
            .y_label_formatter(&|y| format_ms(*y))
            .draw()
            .map_err(chart_error)?;
        draw_lines(&mut chart, &lines)?;
        draw_legend(&legend, &lines)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Produced and consumed MB/s per timeline second, for each report.
pub(crate) fn throughput_svg(reports: &[RunReport], title: &str) -> Result<String, OutputError> {
    let mut lines = Vec::new();
    for (index, report) in reports.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let timeline = &report.timeline;
        let rate = |bytes_of: fn(&crate::report::TimelinePoint) -> u64| -> Vec<(f64, f64)> {
            (0..timeline.len())
                .map(|i| {
                    (
                        timeline[i].t_s,
                        mb_per_s(bytes_of(&timeline[i]), interval_s(timeline, i)),
                    )
                })
                .collect()
        };
        // A direction that moved no byte in the whole run (consumed, in a produce-only
        // scenario) is left out rather than drawn along zero.
        if timeline.iter().any(|point| point.produced_bytes > 0) {
            lines.push(Line {
                label: series_label(reports, report, "produced"),
                points: rate(|point| point.produced_bytes),
                color,
                dashed: false,
            });
        }
        if timeline.iter().any(|point| point.consumed_bytes > 0) {
            lines.push(Line {
                label: series_label(reports, report, "consumed"),
                points: rate(|point| point.consumed_bytes),
                color,
                dashed: true,
            });
        }
    }
    let t_max_s = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|(t_s, _)| *t_s))
        .fold(1.0, f64::max);
    let y_top = throughput_top_mb_per_s(&lines);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE_PX).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let (plot, legend) = root.split_horizontally(SIZE_PX.0 - LEGEND_WIDTH_PX);
        let mut chart = chart_builder(&plot, title)
            .build_cartesian_2d(0.0..t_max_s, 0.0..y_top)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("MB/s")
            .draw()
            .map_err(chart_error)?;
        draw_lines(&mut chart, &lines)?;
        draw_legend(&legend, &lines)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

pub(super) fn chart_builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72);
    builder
}

/// Draws every line.
pub(super) fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[Line],
) -> Result<(), OutputError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for line in lines {
        let style = line.color.stroke_width(2);
        if line.dashed {
            chart
                .draw_series(DashedLineSeries::new(line.points.clone(), 8, 5, style))
                .map_err(chart_error)?;
        } else {
            chart
                .draw_series(LineSeries::new(line.points.clone(), style))
                .map_err(chart_error)?;
        }
    }
    Ok(())
}

/// The legend in its own column beside the plot: a line sample (dashed for consume) and the
/// series' name per row, top-aligned with the plot.
pub(super) fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    lines: &[Line],
) -> Result<(), OutputError> {
    let top_px = 60;
    for (row, line) in lines.iter().enumerate() {
        let y = top_px + row as i32 * LEGEND_ROW_PX;
        let style = line.color.stroke_width(2);
        if line.dashed {
            area.draw(&DashedPathElement::new(vec![(4, y), (32, y)], 6, 3, style))
                .map_err(chart_error)?;
        } else {
            area.draw(&PathElement::new(vec![(4, y), (32, y)], style))
                .map_err(chart_error)?;
        }
        area.draw(&Text::new(
            line.label.clone(),
            (40, y - 7),
            ("sans-serif", 14).into_font().color(&BLACK),
        ))
        .map_err(chart_error)?;
    }
    Ok(())
}

/// Every y value of every line.
fn y_values(lines: &[Line]) -> impl Iterator<Item = f64> + '_ {
    lines
        .iter()
        .flat_map(|line| line.points.iter().map(|(_, y)| *y))
}

/// The log axis' range in ms: from the fastest to the slowest point, at least a factor of two
/// wide (a log axis of one value is degenerate); 1 µs to 1 ms when there are no points.
fn latency_bounds_ms(lines: &[Line]) -> (f64, f64) {
    let low = y_values(lines).fold(f64::INFINITY, f64::min);
    let high = y_values(lines).fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() || !high.is_finite() {
        return (LATENCY_MS_MIN, 1.0);
    }
    let low = low.max(LATENCY_MS_MIN);
    (low, high.max(low * 2.0))
}

/// The top of the MB/s axis: a fifth above the highest point, or 1 MB/s when nothing moved.
fn throughput_top_mb_per_s(lines: &[Line]) -> f64 {
    let high = y_values(lines).fold(0.0, f64::max);
    if high > 0.0 {
        high * 1.2
    } else {
        1.0
    }
}

/// Tick labels of the log latency axis: no trailing noise ("0.01", "2", "150").
fn format_ms(ms: f64) -> String {
    let text = format!("{ms:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(super) fn chart_error<E: std::error::Error + Send + Sync>(
    error: DrawingAreaErrorKind<E>,
) -> OutputError {
    OutputError::Chart(error.to_string())
}
