//! The SVG chart of phones out by hour of the week, drawn with `plotters` (SVG backend).
//!
//! plotters is built without its `ttf` feature, so it measures text with its built-in
//! estimate instead of font files (no fontconfig on the station box): the SVG carries
//! `<text>` elements and the viewer's fonts draw them.

use std::path::Path;

use plotters::prelude::*;

/// Width and height of the chart, in SVG pixels.
pub const SIZE: (u32, u32) = (1200, 480);

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart {path}: {message}; check that the directory exists and is writable")]
pub struct ChartError {
    /// The output file.
    pub path: std::path::PathBuf,
    /// What plotters said.
    pub message: String,
}

/// Draws `average_out` (168 values, Monday 00:00 first) as bars to an SVG file.
pub fn phones_out_by_hour_of_week(
    path: &Path,
    title: &str,
    average_out: &[f64],
) -> Result<(), ChartError> {
    draw(path, title, average_out).map_err(|error| ChartError {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

fn draw(path: &Path, title: &str, average_out: &[f64]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let peak = average_out.iter().copied().fold(0.0f64, f64::max);
    let top = (peak * 1.1).max(1.0).ceil();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            // x in days, so the axis labels fall on midnights.
            0.0f64..7.0,
            0.0f64..top,
        )?;
    chart
        .configure_mesh()
        .x_desc("hour of the week (station time)")
        .y_desc("phones out (average)")
        .x_labels(8)
        .x_label_formatter(&|day| {
            let day = day.round() as usize;
            DAYS.get(day).map(|d| d.to_string()).unwrap_or_default()
        })
        .y_label_formatter(&|value| format!("{value:.0}"))
        .disable_x_mesh()
        .draw()?;
    chart.draw_series(
        average_out
            .iter()
            .take(168)
            .enumerate()
            .map(|(hour, value)| {
                let x = hour as f64 / 24.0;
                let colour = if (hour / 24) >= 5 {
                    RGBColor(120, 144, 156)
                } else {
                    RGBColor(25, 118, 210)
                };
                Rectangle::new([(x, 0.0), (x + 0.8 / 24.0, *value)], colour.filled())
            }),
    )?;
    root.present()?;
    Ok(())
}
