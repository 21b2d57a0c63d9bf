//! One small chart model ([`Panel`] of [`Series`]) drawn to SVG with plotters, so every chart
//! of the report shares axes, fonts, palette and legend placement.
//!
//! Log axes are drawn as linear axes over log10 of the values with labels written back in
//! the data's units (`10k`, `3.2e11`): plotters' own log coordinates pick sparse ticks over
//! spans of less than a decade, which is most of ours.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::format::axis_label;

/// Okabe & Ito (2008)'s colour-blind-safe palette, most distinct first.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(120, 120, 120), // grey (instead of the palette's yellow: unreadable on white)
    RGBColor(0, 0, 0),       // black
];

/// Colour `i` of the palette (cycling).
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    /// A solid line through the points in order.
    Line,
    /// A dashed line (fitted or predicted curves).
    Dashed,
    /// Filled circles.
    Dots,
    /// Hollow circles (held-out points).
    Rings,
    /// Crosses (the final run).
    Crosses,
    /// A shaded band between `lo` (the points) and `hi` (`upper`).
    Band,
    /// Vertical error bars: (x, lo) to (x, hi) pairs from `points` and `upper`.
    ErrorBars,
}

/// One series: points in data units.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry; `None` keeps it out of the legend.
    pub label: Option<String>,
    pub mark: Mark,
    pub colour: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Upper edge for bands and error bars (same x as `points`).
    pub upper: Vec<(f64, f64)>,
    /// Thicker lines for the series the chart is about.
    pub bold: bool,
}

impl Series {
    pub fn new(
        label: Option<String>,
        mark: Mark,
        colour: RGBColor,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Series {
            label,
            mark,
            colour,
            points,
            upper: Vec::new(),
            bold: false,
        }
    }

    pub fn band(colour: RGBColor, lo: Vec<(f64, f64)>, hi: Vec<(f64, f64)>) -> Self {
        Series {
            upper: hi,
            ..Series::new(None, Mark::Band, colour, lo)
        }
    }

    pub fn bold(mut self) -> Self {
        self.bold = true;
        self
    }
}

/// One plot area.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    /// A horizontal reference line (e.g. zero residual, the entropy floor) and its label.
    pub h_line: Option<(f64, String)>,
}

impl Panel {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log: true,
            y_log: false,
            series: Vec::new(),
            h_line: None,
        }
    }

    /// Log y when the values span more than a decade.
    pub fn auto_y(mut self) -> Self {
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().chain(&s.upper).map(|p| p.1))
            .chain(self.h_line.iter().map(|(y, _)| *y))
            .collect();
        let (lo, hi) = bounds(&ys);
        self.y_log = lo > 0.0 && hi / lo > 10.0;
        self
    }
}

fn bounds(values: &[f64]) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing chart `{chart}`: {reason}")]
pub struct PlotError {
    pub chart: String,
    pub reason: String,
}

static FONT: Once = Once::new();

/// plotters' `ab_glyph` text needs a registered font (DESIGN.md stack notes); DejaVu Sans is
/// compiled in so charts never depend on the machine's fonts.
fn register_font() {
    FONT.call_once(|| {
        // The bytes are a valid TrueType font shipped by the `dejavu` crate; a failure here
        // would show as a drawing error naming the chart.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Chart size in pixels (SVG user units).
pub const WIDTH: u32 = 760;
pub const HEIGHT: u32 = 460;

/// Draw `panels` side by side into one SVG document.
pub fn render(chart: &str, panels: &[Panel]) -> Result<String, PlotError> {
    register_font();
    let err = |reason: String| PlotError {
        chart: chart.to_string(),
        reason,
    };
    let mut svg = String::new();
    {
        // Four panels or more (one per size) get a wider figure and fewer x labels each.
        let width = match panels.len() {
            0 | 1 => WIDTH,
            2 | 3 => WIDTH * 3 / 2,
            _ => WIDTH * 2,
        };
        let root = SVGBackend::with_string(&mut svg, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        let x_labels = if panels.len() >= 4 { 4 } else { 7 };
        for (panel, area) in panels.iter().zip(areas.iter()) {
            draw_panel(area, panel, x_labels).map_err(err)?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    x_labels: usize,
) -> Result<(), String> {
    let tx = |v: f64| if panel.x_log { v.log10() } else { v };
    let ty = |v: f64| if panel.y_log { v.log10() } else { v };
    let usable = |(x, y): (f64, f64)| {
        (!panel.x_log || x > 0.0) && (!panel.y_log || y > 0.0) && x.is_finite() && y.is_finite()
    };
    let xs: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().chain(&s.upper))
        .filter(|p| usable(**p))
        .map(|p| tx(p.0))
        .collect();
    let ys: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().chain(&s.upper))
        .filter(|p| usable(**p))
        .map(|p| ty(p.1))
        .chain(panel.h_line.iter().map(|(y, _)| ty(*y)))
        .collect();
    if xs.is_empty() {
        return Err(format!("panel `{}` has no points to draw", panel.title));
    }
    let pad = |(lo, hi): (f64, f64), rel: f64| {
        let span = if hi > lo {
            hi - lo
        } else {
            lo.abs().max(1.0) * 0.1
        };
        (lo - span * rel, hi + span * rel)
    };
    let (x0, x1) = pad(bounds(&xs), 0.04);
    let (y0, y1) = pad(bounds(&ys), 0.06);
    let font = ("sans-serif", 13).into_font();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(62)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    let x_fmt = |v: &f64| axis_label(*v, panel.x_log);
    let y_fmt = |v: &f64| axis_label(*v, panel.y_log);
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_labels(x_labels)
        .y_labels(7)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(font.clone())
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(|e| e.to_string())?;
    let map = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|p| usable(*p))
            .map(|(x, y)| (tx(x), ty(y)))
            .collect()
    };
    if let Some((y, label)) = &panel.h_line {
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(DashedLineSeries::new(
                [(x0, ty(*y)), (x1, ty(*y))],
                6,
                4,
                grey.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], grey.stroke_width(1)));
    }
    for s in &panel.series {
        let pts = map(&s.points);
        let c = s.colour;
        let width = if s.bold { 3 } else { 2 };
        let labelled = match s.mark {
            Mark::Line => Some(
                chart
                    .draw_series(LineSeries::new(pts, c.stroke_width(width)))
                    .map_err(|e| e.to_string())?,
            ),
            Mark::Dashed => Some(
                chart
                    .draw_series(DashedLineSeries::new(pts, 7, 4, c.stroke_width(width)))
                    .map_err(|e| e.to_string())?,
            ),
            Mark::Dots => Some(
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                    .map_err(|e| e.to_string())?,
            ),
            Mark::Rings => Some(
                chart
                    .draw_series(
                        pts.into_iter()
                            .map(|p| Circle::new(p, 6, c.stroke_width(2))),
                    )
                    .map_err(|e| e.to_string())?,
            ),
            Mark::Crosses => Some(
                chart
                    .draw_series(pts.into_iter().map(|p| Cross::new(p, 7, c.stroke_width(3))))
                    .map_err(|e| e.to_string())?,
            ),
            Mark::Band => {
                let hi = map(&s.upper);
                let polygon: Vec<(f64, f64)> =
                    pts.iter().copied().chain(hi.into_iter().rev()).collect();
                if polygon.len() >= 3 {
                    chart
                        .draw_series(std::iter::once(Polygon::new(polygon, c.mix(0.18).filled())))
                        .map_err(|e| e.to_string())?;
                }
                None
            }
            Mark::ErrorBars => {
                let hi = map(&s.upper);
                chart
                    .draw_series(
                        pts.iter()
                            .zip(&hi)
                            .map(|(lo, hi)| PathElement::new(vec![*lo, *hi], c.stroke_width(2))),
                    )
                    .map_err(|e| e.to_string())?;
                None
            }
        };
        if let (Some(anno), Some(label)) = (labelled, &s.label) {
            let mark = s.mark;
            anno.label(label.clone()).legend(move |(x, y)| match mark {
                Mark::Dots => Circle::new((x + 8, y), 4, c.filled()).into_dyn(),
                Mark::Rings => Circle::new((x + 8, y), 5, c.stroke_width(2)).into_dyn(),
                Mark::Crosses => Cross::new((x + 8, y), 5, c.stroke_width(3)).into_dyn(),
                _ => PathElement::new([(x, y), (x + 16, y)], c.stroke_width(width)).into_dyn(),
            });
        }
    }
    if panel.series.iter().any(|s| s.label.is_some()) || panel.h_line.is_some() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
