//! SVG bar charts of the results (plotters, SVG backend only: no fonts or system libraries),
//! written next to the Markdown with `--svg DIR` and included by `BENCHMARKS.md`.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One bar: its label, the median (bar height) and the min–max range (whisker).
#[derive(Clone, Debug)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Bar height.
    pub value: f64,
    /// Whisker bottom and top (equal to `value` for a single exact figure).
    pub range: (f64, f64),
}

impl Bar {
    /// A bar without spread (an exact figure such as an instruction count).
    pub fn exact(label: impl Into<String>, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
            range: (value, value),
        }
    }
}

/// Writes a horizontal bar chart (one bar per entry, whiskers for min–max) to `path`.
pub fn bars(path: &Path, title: &str, unit: &str, bars: &[Bar]) -> Result<()> {
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let top = bars
        .iter()
        .map(|b| finite(b.range.1).max(finite(b.value)))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let height = 90 + 34 * bars.len() as u32;
    let root = SVGBackend::new(path, (820, height)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = bars.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..top, (0..n).into_segmented())
        .map_err(|e| err(&e))?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(unit)
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels
                .get(bars.len().wrapping_sub(1).wrapping_sub(*i as usize))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| err(&e))?;
    // Bars top to bottom in input order.
    let pos = |i: usize| n - 1 - i as i32;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let y = pos(i);
            let color = if b.label.starts_with("ringstack") {
                RGBColor(0x2b, 0x6c, 0xb0)
            } else if b.label.starts_with("smoltcp") {
                RGBColor(0xdd, 0x8a, 0x2e)
            } else {
                RGBColor(0x70, 0x70, 0x70)
            };
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(y)),
                    (finite(b.value), SegmentValue::Exact(y + 1)),
                ],
                color.mix(0.85).filled(),
            )
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
            let (lo, hi) = (finite(b.range.0), finite(b.range.1));
            (hi > lo).then(|| {
                PathElement::new(
                    vec![
                        (lo, SegmentValue::CenterOf(pos(i))),
                        (hi, SegmentValue::CenterOf(pos(i))),
                    ],
                    BLACK.stroke_width(2),
                )
            })
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!(" {}", crate::stats::num(b.value)),
                (finite(b.value), SegmentValue::CenterOf(pos(i))),
                ("sans-serif", 13),
            )
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_label() {
        let dir = std::env::temp_dir().join(format!("rs-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.svg");
        bars(
            &p,
            "title",
            "Ir per byte",
            &[
                Bar::exact("ringstack → ringstack", 2.97),
                Bar {
                    label: "smoltcp → smoltcp".into(),
                    value: 3.8,
                    range: (3.5, 4.0),
                },
            ],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("ringstack → ringstack"));
        assert!(svg.contains("smoltcp → smoltcp"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
