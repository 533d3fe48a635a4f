//! The x axis of a latency percentile chart: the usual "log of 1/(1-p)" scale, on which 90%, 99%,
//! 99.9%, … are evenly spaced, so the tail gets as much room as the body. 100% (the maximum) has
//! no finite position; it is drawn one decade past the deepest percentile and labelled "max".
//!
//! # Invariants worth naming
//! - `x` is increasing in the percentile, and `x(0%) = 0`.
//! - Every tick lies in `[0, x_max]`.
#![forbid(unsafe_code)]

use crate::report::PercentileCurve;

/// Fewest nines the axis shows (to 99.9%), so that short curves still read as tail charts.
const NINES_MIN: u32 = 3;
/// Most nines the axis shows (to 99.9999%); an HdrHistogram of a run holds no deeper percentile.
const NINES_MAX: u32 = 6;

/// Where a percentile in `[0, 100)` sits: `log10(1 / (1 - p/100))`; `None` at or past 100%.
pub(crate) fn x_of_percentile(percentile: f64) -> Option<f64> {
    assert!(
        percentile >= 0.0,
        "a percentile is not negative: {percentile}"
    );
    (percentile < 100.0).then(|| -(1.0 - percentile / 100.0).log10())
}

/// An axis fitted to some curves: how many nines, whether a "max" slot is needed, the ticks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PercentileAxis {
    /// The right end of the axis (the "max" slot when there is one).
    pub(crate) x_max: f64,
    /// (x, label) of each labelled tick, in increasing x.
    pub(crate) ticks: Vec<(f64, String)>,
}

impl PercentileAxis {
    /// The axis that shows every point of `curves`.
    pub(crate) fn fitted(curves: &[&PercentileCurve]) -> Self {
        let points = || curves.iter().flat_map(|curve| curve.iter());
        let deepest_x = points()
            .filter_map(|(percentile, _)| x_of_percentile(*percentile))
            .fold(0.0, f64::max);
        let nines = (deepest_x.ceil() as u32).clamp(NINES_MIN, NINES_MAX);
        let has_max = points().any(|(percentile, _)| *percentile >= 100.0);
        let mut ticks = vec![
            (0.0, "0%".to_string()),
            (x_of_percentile(50.0).expect("finite"), "50%".to_string()),
        ];
        for nine in 1..=nines {
            ticks.push((f64::from(nine), nines_label(nine)));
        }
        let x_max = if has_max {
            let x_max = f64::from(nines + 1);
            ticks.push((x_max, "max".to_string()));
            x_max
        } else {
            f64::from(nines)
        };
        assert!(ticks.windows(2).all(|pair| pair[0].0 < pair[1].0));
        Self { x_max, ticks }
    }

    /// Where a percentile sits on this axis; 100% and beyond sit at the "max" slot, and a
    /// percentile deeper than the axis is clamped to its right end.
    pub(crate) fn x(&self, percentile: f64) -> f64 {
        x_of_percentile(percentile).map_or(self.x_max, |x| x.min(self.x_max))
    }

    /// The label of the tick at `x`, or nothing between ticks.
    pub(crate) fn label(&self, x: f64) -> String {
        self.ticks
            .iter()
            .find(|(tick, _)| (tick - x).abs() < 1e-9)
            .map_or_else(String::new, |(_, label)| label.clone())
    }

    pub(crate) fn tick_positions(&self) -> Vec<f64> {
        self.ticks.iter().map(|(x, _)| *x).collect()
    }
}

/// "90%", "99%", "99.9%", … for one, two, three, … nines.
fn nines_label(nines: u32) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powi(-(nines as i32)));
    let decimals = nines.saturating_sub(2) as usize;
    format!("{percentile:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_of_nines_are_evenly_spaced() {
        // Guards the scale itself: 90% → 1, 99% → 2, 99.9% → 3, and 0% → 0.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(x_of_percentile(0.0).unwrap(), 0.0));
        assert!(close(x_of_percentile(90.0).unwrap(), 1.0));
        assert!(close(x_of_percentile(99.0).unwrap(), 2.0));
        assert!(close(x_of_percentile(99.9).unwrap(), 3.0));
        assert_eq!(x_of_percentile(100.0), None);
    }

    #[test]
    fn axis_fits_the_histogram_curve_and_labels_its_ticks() {
        // Guards the labels a reader sees on the histogram's standard curve (to 99.999% and max).
        let curve: PercentileCurve = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0]
            .iter()
            .map(|p| (*p, 1))
            .collect();
        let axis = PercentileAxis::fitted(&[&curve]);
        let labels: Vec<&str> = axis.ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels,
            ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"]
        );
        assert_eq!(axis.x_max, 6.0);
        assert_eq!(axis.x(100.0), 6.0);
        assert_eq!(axis.label(2.0), "99%");
        assert_eq!(axis.label(2.5), "");
    }

    #[test]
    fn empty_curves_still_get_a_three_nines_axis() {
        // Guards charts of a run that recorded nothing: a valid, non-degenerate axis.
        let axis = PercentileAxis::fitted(&[]);
        assert_eq!(axis.x_max, 3.0);
        assert_eq!(axis.ticks.last().unwrap().1, "99.9%");
    }
}
