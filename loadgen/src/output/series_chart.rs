//! Time series from CSV columns as stacked SVG panels (`ringtail-loadgen chart`), drawn as the
//! run charts are (plotters, same palette, legend column). Used by scripts/soak.sh for the
//! broker's RSS, open fds, data size and p99 over a soak; any numeric CSV with a header works.
//!
//! Pure: CSV text in, SVG text out. Empty or non-numeric cells are gaps (a soak's restart row
//! has no p99), never zeros.

use plotters::prelude::*;

use super::charts::{chart_builder, chart_error, draw_legend, draw_lines, Line, PALETTE};
use super::OutputError;

/// Width of the chart; each panel is this tall.
const WIDTH_PX: u32 = 1000;
const PANEL_HEIGHT_PX: u32 = 260;
const LEGEND_WIDTH_PX: u32 = 270;

/// One panel: columns of one CSV against its x column.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelSpec {
    pub x_column: String,
    pub y_columns: Vec<String>,
}

/// Why a panel could not be drawn from its CSV.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SeriesError {
    #[error("the CSV has no header line")]
    NoHeader,
    #[error("column {0:?} is not in the CSV header")]
    NoColumn(String),
}

/// The (x, y) points of `y_column`, rows whose x or y cell is empty or not a number left out.
pub fn column_points(
    csv_text: &str,
    x_column: &str,
    y_column: &str,
) -> Result<Vec<(f64, f64)>, SeriesError> {
    let mut lines = csv_text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or(SeriesError::NoHeader)?
        .split(',')
        .collect();
    let index = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| SeriesError::NoColumn(name.to_string()))
    };
    let (x, y) = (index(x_column)?, index(y_column)?);
    Ok(lines
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let number = |i: usize| cells.get(i)?.trim().parse::<f64>().ok();
            Some((number(x)?, number(y)?))
        })
        .collect())
}

/// Stacked panels, one per (CSV text, spec), sharing the x range; a title over the first.
pub fn series_svg(panels: &[(String, PanelSpec)], title: &str) -> Result<String, OutputError> {
    let mut drawn: Vec<(String, Vec<Line>)> = Vec::new();
    let mut color_index = 0;
    for (csv_text, spec) in panels {
        let mut lines = Vec::new();
        for y_column in &spec.y_columns {
            let points = column_points(csv_text, &spec.x_column, y_column)
                .map_err(|err| OutputError::Chart(err.to_string()))?;
            lines.push(Line {
                label: y_column.clone(),
                points,
                color: PALETTE[color_index % PALETTE.len()],
                dashed: false,
            });
            color_index += 1;
        }
        drawn.push((spec.y_columns.join(", "), lines));
    }
    let all_points = || {
        drawn
            .iter()
            .flat_map(|(_, lines)| lines.iter().flat_map(|l| l.points.iter()))
    };
    let x_max = all_points().map(|(x, _)| *x).fold(1.0, f64::max);
    let height = PANEL_HEIGHT_PX * drawn.len().max(1) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        for (index, (area, (y_desc, lines))) in root
            .split_evenly((drawn.len().max(1), 1))
            .iter()
            .zip(&drawn)
            .enumerate()
        {
            let (plot, legend) = area.split_horizontally(WIDTH_PX - LEGEND_WIDTH_PX);
            let y_max = lines
                .iter()
                .flat_map(|l| l.points.iter().map(|(_, y)| *y))
                .fold(0.0, f64::max);
            let caption = if index == 0 { title } else { "" };
            let mut chart = chart_builder(&plot, caption)
                .build_cartesian_2d(0.0..x_max, 0.0..(y_max * 1.2).max(1.0))
                .map_err(chart_error)?;
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc(y_desc.as_str())
                .draw()
                .map_err(chart_error)?;
            draw_lines(&mut chart, lines)?;
            draw_legend(&legend, lines)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "t_s,life,rss_mib,p99\n0,1,10.5,\n5,1,11,3.5\n10,2,9,x\n";

    #[test]
    fn empty_and_non_numeric_cells_are_gaps_not_zeros() {
        assert_eq!(
            column_points(CSV, "t_s", "rss_mib").unwrap(),
            vec![(0.0, 10.5), (5.0, 11.0), (10.0, 9.0)]
        );
        assert_eq!(column_points(CSV, "t_s", "p99").unwrap(), vec![(5.0, 3.5)]);
    }

    #[test]
    fn a_missing_column_or_header_is_an_error() {
        assert_eq!(
            column_points(CSV, "t_s", "fds"),
            Err(SeriesError::NoColumn("fds".into()))
        );
        assert_eq!(column_points("", "t_s", "fds"), Err(SeriesError::NoHeader));
    }

    #[test]
    fn panels_are_drawn_with_their_columns_in_the_legend() {
        let spec = |y: &[&str]| PanelSpec {
            x_column: "t_s".into(),
            y_columns: y.iter().map(|s| s.to_string()).collect(),
        };
        let svg = series_svg(
            &[
                (CSV.into(), spec(&["rss_mib"])),
                (CSV.into(), spec(&["p99"])),
            ],
            "soak",
        )
        .unwrap();
        assert!(svg.contains("rss_mib") && svg.contains("p99") && svg.contains("soak"));
        assert!(svg.contains("<polyline"), "lines drawn");
        assert!(series_svg(&[(CSV.into(), spec(&["nope"]))], "x").is_err());
    }
}
