//! `--export-svg`: the latency percentile spectrum, as HdrHistogram's
//! plotter draws it: x is the percentile on a log scale of 1/(1-p) (so 90%,
//! 99%, 99.9% ... are evenly spaced), y the latency; one curve per view.

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Points (1/(1-p), latency ms) of a histogram's spectrum, up to its max.
pub fn spectrum(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    // The max sits where one sample in `len` would: p = 1 - 1/len.
    let last_x = (histogram.len() as f64).max(10.0);
    let mut points: Vec<(f64, f64)> = histogram
        .iter_quantiles(5)
        .filter(|step| step.quantile_iterated_to() < 1.0)
        .map(|step| {
            let x = 1.0 / (1.0 - step.quantile_iterated_to());
            (x.min(last_x), step.value_iterated_to() as f64 / 1000.0)
        })
        .collect();
    points.push((last_x, histogram.max() as f64 / 1000.0));
    points
}

fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let digits = (x.log10().round() as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

/// The SVG document: one curve per `(label, histogram)`.
pub fn spectrum_svg(title: &str, views: &[(&str, &Histogram<u64>)]) -> Result<String> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = views
        .iter()
        .map(|(label, h)| (*label, spectrum(h)))
        .collect();
    let x_max = curves
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(10.0_f64, f64::max);
    // Round up to a power of ten so the axis ends on a percentile tick.
    let x_max = 10f64.powf(x_max.log10().ceil());
    let y_max = curves
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.001_f64, f64::max)
        * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 540)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw the SVG: {e}");
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()
            .map_err(|e| fail(&e))?;
        let colors = [RED, BLUE, GREEN, BLACK];
        for ((label, points), color) in curves.into_iter().zip(colors) {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats;
    use std::time::Duration;

    #[test]
    fn spectrum_rises_to_the_max_and_the_svg_has_both_curves() -> Result<()> {
        let mut fast = stats::histogram();
        let mut slow = stats::histogram();
        for us in 1..=1000u64 {
            stats::record(&mut fast, Duration::from_micros(us));
            stats::record(&mut slow, Duration::from_micros(us * 10));
        }
        let points = spectrum(&fast);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(points.last(), Some(&(1000.0, 1.0)));
        let svg = spectrum_svg("test", &[("corrected", &slow), ("as sent", &fast)])?;
        assert!(
            svg.starts_with("<svg"),
            "{}",
            svg.chars().take(80).collect::<String>()
        );
        std::fs::write(std::env::temp_dir().join("fib-spectrum-test.svg"), &svg)?;
        for color in ["#FF0000", "#0000FF"] {
            let curves = svg
                .lines()
                .filter(|l| l.contains("<polyline") && l.contains(&format!("stroke=\"{color}\"")))
                .count();
            assert_eq!(curves, 2, "{color}: one curve and its legend mark");
        }
        assert!(svg.contains("corrected") && svg.contains("as sent") && svg.contains("99.9%"));
        Ok(())
    }

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1.0), "0%");
    }
}
