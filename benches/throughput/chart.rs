//! The SVG picture of a run (`--svg PATH`): sequential throughput per peer as bars
//! (median) with min–max whiskers, and the seek-latency distribution (p50/p90/p99) per
//! kind of seek on a log scale. People compare peers at a glance, not by reading ratios.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{median, percentile};

/// One bar group: a label and the samples behind it.
pub struct Series {
    pub label: String,
    pub samples: Vec<f64>,
}

impl Series {
    pub fn new(label: impl Into<String>, samples: &[f64]) -> Series {
        Series {
            label: label.into(),
            samples: samples.iter().copied().filter(|v| v.is_finite()).collect(),
        }
    }
}

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 980;
const FONT: &str = "sans-serif";
const PEER_COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];
/// p50, p90, p99.
const PERCENTILES: [(f64, &str, RGBColor); 3] = [
    (0.50, "p50", RGBColor(49, 130, 189)),
    (0.90, "p90", RGBColor(158, 202, 225)),
    (0.99, "p99", RGBColor(230, 85, 13)),
];

fn min_max(samples: &[f64]) -> (f64, f64) {
    samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn show_micros(us: f64) -> String {
    if us >= 1000.0 {
        let ms = format!("{:.2}", us / 1000.0);
        format!("{} ms", ms.trim_end_matches('0').trim_end_matches('.'))
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

type Failure = Box<dyn std::error::Error>;

/// Writes the chart. `title` heads the picture (machine, date, mode); `throughput` holds
/// MiB/s samples per peer, `seeks` microsecond samples per kind of seek.
pub fn write_svg(
    path: &Path,
    title: &str,
    throughput: &[Series],
    seeks: &[Series],
) -> Result<(), String> {
    draw(path, title, throughput, seeks).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw(path: &Path, title: &str, throughput: &[Series], seeks: &[Series]) -> Result<(), Failure> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 18))?;
    let (top, bottom) = root.split_vertically(HEIGHT * 2 / 5);
    let peers: Vec<&Series> = throughput
        .iter()
        .filter(|s| !s.samples.is_empty())
        .collect();
    let kinds: Vec<&Series> = seeks.iter().filter(|s| !s.samples.is_empty()).collect();
    throughput_panel(&top, &peers)?;
    seek_panel(&bottom, &kinds)?;
    root.present()?;
    Ok(())
}

/// Category names under the x axis, one text line per `\n`-separated part (drawn on
/// `area` at the chart's pixel positions: plotters labels a continuous axis only at its
/// own key points).
fn category_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    at: impl Iterator<Item = ((i32, i32), String)>,
) -> Result<(), Failure>
where
    DB::ErrorType: 'static,
{
    let (x0, y0) = area.get_base_pixel();
    let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for ((x, y), label) in at {
        for (line, text) in label.split('\n').enumerate() {
            let y = y - y0 + 8 + 17 * line as i32;
            area.draw(&Text::new(text.to_string(), (x - x0, y), style.clone()))?;
        }
    }
    Ok(())
}

fn throughput_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    peers: &[&Series],
) -> Result<(), Failure>
where
    DB::ErrorType: 'static,
{
    let top = peers
        .iter()
        .map(|s| min_max(&s.samples).1)
        .fold(1.0, f64::max)
        * 1.18;
    let n = peers.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Sequential read, no cache (median; whiskers: min–max over the repetitions)",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(78)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("MiB/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(TRANSPARENT)
        .label_style((FONT, 13))
        .draw()?;
    if peers.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "not measured in this run",
            (-0.3, top / 2.0),
            (FONT, 16),
        )))?;
        return Ok(());
    }
    for (i, peer) in peers.iter().enumerate() {
        let x = i as f64;
        let color = PEER_COLORS[i % PEER_COLORS.len()];
        let med = median(&peer.samples);
        let (lo, hi) = min_max(&peer.samples);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, med)],
            color.mix(0.85).filled(),
        )))?;
        let whisker = BLACK.stroke_width(2);
        chart.draw_series([
            PathElement::new(vec![(x, lo), (x, hi)], whisker),
            PathElement::new(vec![(x - 0.08, lo), (x + 0.08, lo)], whisker),
            PathElement::new(vec![(x - 0.08, hi), (x + 0.08, hi)], whisker),
        ])?;
        let label = format!("{med:.0} MiB/s (n={})", peer.samples.len());
        let above = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom));
        chart.draw_series(std::iter::once(Text::new(
            label,
            (x + 0.1, hi + top * 0.02),
            above,
        )))?;
    }
    let at: Vec<_> = peers
        .iter()
        .enumerate()
        .map(|(i, s)| (chart.backend_coord(&(i as f64, 0.0)), s.label.clone()))
        .collect();
    category_labels(area, at.into_iter())
}

fn seek_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    kinds: &[&Series],
) -> Result<(), Failure>
where
    DB::ErrorType: 'static,
{
    let (lo, hi) = kinds
        .iter()
        .map(|s| min_max(&s.samples))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (c, d)| {
            (a.min(c), b.max(d))
        });
    let (lo, hi) = if kinds.is_empty() {
        (1.0, 1000.0)
    } else {
        (lo.max(0.01) / 2.0, hi * 3.0)
    };
    let n = kinds.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Seek + 4 KiB read: latency distribution per kind of seek (log scale)",
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(78)
        .build_cartesian_2d(-0.5..n - 0.5, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("latency (µs, log)")
        .y_label_formatter(&|v| show_micros(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .label_style((FONT, 13))
        .draw()?;
    if kinds.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "not measured in this run",
            (-0.3, (lo * hi).sqrt()),
            (FONT, 16),
        )))?;
        return Ok(());
    }
    let width = 0.8 / PERCENTILES.len() as f64;
    for (k, (p, name, color)) in PERCENTILES.iter().enumerate() {
        let bars: Vec<_> = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let x = i as f64 - 0.4 + k as f64 * width;
                let v = percentile(&kind.samples, *p);
                Rectangle::new([(x + 0.02, lo), (x + width - 0.02, v)], color.filled())
            })
            .collect();
        let color = *color;
        chart
            .draw_series(bars)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    // The p50 value over each group, so the chart can be read without the table.
    let small = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, kind) in kinds.iter().enumerate() {
        let p99 = percentile(&kind.samples, 0.99);
        let p50 = percentile(&kind.samples, 0.50);
        chart.draw_series(std::iter::once(Text::new(
            format!("p50 {}", show_micros(p50)),
            (i as f64, p99 * 1.15),
            small.clone(),
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    let at: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let label = format!("{}\nn={}", s.label, s.samples.len());
            (chart.backend_coord(&(i as f64, lo)), label)
        })
        .collect();
    category_labels(area, at.into_iter())
}
