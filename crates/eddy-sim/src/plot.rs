//! Miss-ratio curves as an SVG: request miss ratio and byte miss ratio against cache size (a
//! share of the working set, log scale), one line per policy.

use std::path::Path;

use plotters::prelude::*;

use crate::SimError;
use crate::sweep::Point;

/// Draw `points` (from [`crate::sweep::sweep`]) to `path`.
pub fn svg(path: &Path, title: &str, working_set: u64, points: &[Point]) -> Result<(), SimError> {
    draw(path, title, working_set, points).map_err(|e| SimError::Output(e.to_string()))
}

fn draw(
    path: &Path,
    title: &str,
    working_set: u64,
    points: &[Point],
) -> Result<(), Box<dyn std::error::Error>> {
    let share = |c: u64| 100.0 * c as f64 / working_set.max(1) as f64;
    let xs: Vec<f64> = points.iter().map(|p| share(p.capacity)).collect();
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(0.0f64, f64::max);
    if !(lo.is_finite() && hi > 0.0) {
        return Err("nothing to plot".into());
    }
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else {
        (lo / 2.0, hi * 2.0)
    };
    let mut policies: Vec<&str> = Vec::new();
    for p in points {
        if !policies.contains(&p.policy.as_str()) {
            policies.push(&p.policy);
        }
    }
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(600);
    for (area, bytes) in [(left, false), (right, true)] {
        let ratio = |p: &Point| {
            if bytes {
                p.outcome.byte_miss_ratio()
            } else {
                p.outcome.miss_ratio()
            }
        };
        let ys: Vec<f64> = points.iter().map(ratio).collect();
        let y_lo = (ys.iter().copied().fold(1.0f64, f64::min) - 0.02).max(0.0);
        let y_hi = (ys.iter().copied().fold(0.0f64, f64::max) + 0.02).min(1.0);
        let mut chart = ChartBuilder::on(&area)
            .caption(
                if bytes {
                    "byte miss ratio"
                } else {
                    "request miss ratio"
                },
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), y_lo..y_hi)?;
        chart
            .configure_mesh()
            .x_desc("cache size, % of working set")
            .y_desc("miss ratio")
            .x_label_formatter(&|x| format!("{x:.2}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()?;
        for (i, name) in policies.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let line: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.policy == *name)
                .map(|p| (share(p.capacity), ratio(p)))
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::run::Outcome;

    #[test]
    fn writes_an_svg_with_a_line_per_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mrc.svg");
        let mut points = Vec::new();
        for (policy, base) in [("lru", 0.8), ("belady", 0.6)] {
            for (i, cap) in [10u64, 100, 1000].into_iter().enumerate() {
                let misses = ((base - 0.1 * i as f64) * 1000.0) as u64;
                points.push(Point {
                    policy: policy.into(),
                    capacity: cap,
                    outcome: Outcome {
                        requests: 1000,
                        misses,
                        bytes: 1000,
                        missed_bytes: misses,
                    },
                });
            }
        }
        svg(&path, "test trace", 10_000, &points).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg"));
        assert!(text.contains("lru") && text.contains("belady") && text.contains("test trace"));
        assert!(
            text.matches("<polyline").count() >= 4,
            "two lines per chart"
        );
        assert!(svg(&path, "empty", 1, &[]).is_err());
    }
}
