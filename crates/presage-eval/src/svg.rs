//! Tiny SVG chart primitives for the HTML reports, written with `maud` so every label
//! is escaped.
//!
//! Charts are meant to be inlined in HTML: the root `<svg>` has no `xmlns`
//! (the HTML parser supplies it), so the output holds no URL at all. Every element is
//! closed explicitly (`<line …></line>`): inside `<svg>` the HTML parser treats an
//! unclosed `<line>` as the parent of whatever follows.
//! Missing or non-finite values are skipped, never drawn.

use std::fmt;

use maud::{Markup, html};

/// Okabe–Ito blue, distinguishable under the common colour-vision deficiencies.
pub const BLUE: &str = "#0072B2";
/// Okabe–Ito orange.
pub const ORANGE: &str = "#E69F00";
/// Okabe–Ito bluish green.
pub const GREEN: &str = "#009E73";
/// Neutral grey, for baselines and references.
pub const GREY: &str = "#6E6E6E";

/// A pixel coordinate, written with one decimal: finer steps are invisible and only
/// make the page larger.
#[derive(Debug, Clone, Copy)]
struct Px(f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// Shape drawn at each data point; shapes back up colour for readers who cannot tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled square.
    Square,
    /// A filled upward triangle.
    Triangle,
    /// A filled diamond.
    Diamond,
    /// No marker.
    None,
}

/// One line of a [`LineChart`]: a value (or a gap) per category.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke and fill colour, e.g. [`BLUE`].
    pub colour: &'static str,
    /// Marker at each point.
    pub marker: Marker,
    /// Dashed instead of solid line.
    pub dashed: bool,
    /// One entry per category; `None` or non-finite values are skipped.
    pub points: Vec<Option<f64>>,
}

/// A horizontal reference line across a [`LineChart`], labelled at its right end.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceLine {
    /// Short label drawn above the line's right end.
    pub label: String,
    /// Stroke colour.
    pub colour: &'static str,
    /// Height of the line.
    pub y: f64,
}

/// A line chart over evenly spaced, labelled x positions (categories).
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title, shown on top and as the SVG `<title>`.
    pub title: String,
    /// X axis caption.
    pub x_label: String,
    /// Y axis caption.
    pub y_label: String,
    /// Labels of the x positions, shared by every series.
    pub categories: Vec<String>,
    /// The lines.
    pub series: Vec<Series>,
    /// Horizontal reference lines.
    pub references: Vec<ReferenceLine>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One curve of a [`CalibrationChart`]: (mean predicted, observed) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct XySeries {
    /// Legend text.
    pub name: String,
    /// Stroke and fill colour.
    pub colour: &'static str,
    /// Marker at each point.
    pub marker: Marker,
    /// Dashed instead of solid line.
    pub dashed: bool,
    /// Points in drawing order; non-finite coordinates are skipped.
    pub points: Vec<(f64, f64)>,
}

/// Predicted against observed frequency on `[0, 1]²`, with the diagonal of perfect calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationChart {
    /// Title, shown on top and as the SVG `<title>`.
    pub title: String,
    /// The curves.
    pub series: Vec<XySeries>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One step line of a [`HistogramChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSeries {
    /// Legend text.
    pub name: String,
    /// Stroke colour.
    pub colour: &'static str,
    /// Dashed instead of solid line.
    pub dashed: bool,
    /// Lower edge of the first bin.
    pub lower: f64,
    /// Upper edge of the last bin.
    pub upper: f64,
    /// Height of each equal-width bin.
    pub values: Vec<f64>,
}

/// Overlaid step-line histograms; the y axis starts at 0.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramChart {
    /// Title, shown on top and as the SVG `<title>`.
    pub title: String,
    /// X axis caption.
    pub x_label: String,
    /// Y axis caption.
    pub y_label: String,
    /// The histograms.
    pub series: Vec<HistogramSeries>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// "Nice" ticks (steps of 1, 2 or 5 × 10^k) covering `[min, max]` in about `target` intervals.
///
/// The first tick is ≤ `min` and the last ≥ `max`; a degenerate or non-finite range is widened.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    let (mut lo, mut hi) = if min.is_finite() && max.is_finite() {
        (min.min(max), min.max(max))
    } else {
        (0.0, 1.0)
    };
    if hi - lo <= lo.abs().max(hi.abs()) * 1e-12 {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let step = nice_step(hi - lo, target);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    // Bounded so a pathological range cannot allocate without limit.
    let count = ((last - first) as usize).min(200);
    (0..=count)
        .map(|k| {
            let v = (first + k as f64) * step;
            if v == 0.0 { 0.0 } else { v }
        })
        .collect()
}

fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Formats tick values with just enough decimals for their spacing.
fn tick_labels(ticks: &[f64]) -> Vec<(f64, String)> {
    let step = ticks
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(f64::INFINITY, f64::min);
    let decimals = if step.is_finite() && step > 0.0 {
        (-step.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        2
    };
    ticks
        .iter()
        .map(|&t| (t, format!("{t:.decimals$}")))
        .collect()
}

/// One axis: its data range and labelled ticks.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A numeric axis spanning nice ticks around the data.
    fn nice(min: f64, max: f64, target: usize) -> Self {
        let ticks = nice_ticks(min, max, target);
        let lo = ticks.first().copied().unwrap_or(0.0);
        let hi = ticks.last().copied().unwrap_or(1.0);
        Self {
            lo,
            hi,
            ticks: tick_labels(&ticks),
        }
    }

    /// A numeric axis spanning exactly `[lo, hi]`, ticks inside it only.
    fn exact(lo: f64, hi: f64, target: usize) -> Self {
        let ticks: Vec<f64> = nice_ticks(lo, hi, target)
            .into_iter()
            .filter(|&t| t >= lo - (hi - lo) * 1e-9 && t <= hi + (hi - lo) * 1e-9)
            .collect();
        Self {
            lo,
            hi,
            ticks: tick_labels(&ticks),
        }
    }

    /// Categories at band centres of `[0, n]`.
    fn categories(labels: &[String]) -> Self {
        Self {
            lo: 0.0,
            hi: labels.len().max(1) as f64,
            ticks: labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i as f64 + 0.5, l.clone()))
                .collect(),
        }
    }

    /// Position of `v` as a fraction of the axis length.
    fn fraction(&self, v: f64) -> f64 {
        let span = self.hi - self.lo;
        if span > 0.0 {
            (v - self.lo) / span
        } else {
            0.5
        }
    }
}

/// A legend entry.
struct Key<'a> {
    name: &'a str,
    colour: &'a str,
    marker: Marker,
    dashed: bool,
}

const LEGEND_ROW: f64 = 18.0;
/// Rough width of one character at 12 px, for laying out the legend without a font engine.
const CHAR_WIDTH: f64 = 6.6;

/// The canvas: plot area in pixels and the two axes.
struct Plot {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: Axis,
    y: Axis,
    /// Legend entry positions (x, y baseline).
    legend: Vec<(f64, f64)>,
}

impl Plot {
    fn new(width: u32, height: u32, x: Axis, y: Axis, keys: &[Key<'_>]) -> Self {
        let width = f64::from(width.max(160));
        let height = f64::from(height.max(120));
        let left = 64.0;
        let right = width - 18.0;
        // Lay the legend out in rows under the title, wrapping at the right edge.
        let mut legend = Vec::with_capacity(keys.len());
        let (mut cx, mut row) = (left, 0.0);
        for key in keys {
            let w = 30.0 + CHAR_WIDTH * key.name.chars().count() as f64 + 14.0;
            if cx > left && cx + w > right {
                cx = left;
                row += 1.0;
            }
            legend.push((cx, 42.0 + row * LEGEND_ROW));
            cx += w;
        }
        let rows = if keys.is_empty() { 0.0 } else { row + 1.0 };
        Self {
            width,
            height,
            left,
            right,
            top: 34.0 + rows * LEGEND_ROW + 8.0,
            bottom: height - 46.0,
            x,
            y,
            legend,
        }
    }

    fn sx(&self, v: f64) -> f64 {
        self.left + self.x.fraction(v) * (self.right - self.left)
    }

    fn sy(&self, v: f64) -> f64 {
        self.bottom - self.y.fraction(v) * (self.bottom - self.top)
    }

    /// The whole `<svg>`: `<title>`, the visible title, grid, axes and legend, then
    /// `content` (the data) drawn over them.
    fn svg(
        &self,
        title: &str,
        x_label: &str,
        y_label: &str,
        keys: &[Key<'_>],
        content: Markup,
    ) -> Markup {
        html! {
            svg.figure width=(self.width) height=(self.height)
                viewBox={ "0 0 " (self.width) " " (self.height) } role="img"
                font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
                font-size="12" {
                title { (title) }
                rect width=(self.width) height=(self.height) fill="#ffffff" {}
                text x=(self.left) y="20" font-size="14" font-weight="600" fill="#1a1a1a" {
                    (title)
                }
                // Horizontal grid and y ticks.
                @for (v, label) in &self.y.ticks {
                    @let y = self.sy(*v);
                    line x1=(Px(self.left)) y1=(Px(y)) x2=(Px(self.right)) y2=(Px(y))
                        stroke="#e4e4e4" {}
                    text x=(Px(self.left - 6.0)) y=(Px(y + 4.0)) text-anchor="end" fill="#444" {
                        (label)
                    }
                }
                // X ticks.
                @for (v, label) in &self.x.ticks {
                    @let x = self.sx(*v);
                    line x1=(Px(x)) y1=(Px(self.bottom)) x2=(Px(x)) y2=(Px(self.bottom + 5.0))
                        stroke="#444" {}
                    text x=(Px(x)) y=(Px(self.bottom + 18.0)) text-anchor="middle" fill="#444" {
                        (label)
                    }
                }
                // Axis lines and captions.
                path d={
                    "M" (Px(self.left)) " " (Px(self.top))
                    "V" (Px(self.bottom)) "H" (Px(self.right))
                } fill="none" stroke="#444" {}
                text x=(Px((self.left + self.right) / 2.0)) y=(Px(self.height - 10.0))
                    text-anchor="middle" fill="#1a1a1a" { (x_label) }
                text transform={ "translate(16 " (Px((self.top + self.bottom) / 2.0)) ") rotate(-90)" }
                    text-anchor="middle" fill="#1a1a1a" { (y_label) }
                @for (key, &(x, y)) in keys.iter().zip(&self.legend) {
                    @let mid = y - 4.0;
                    line x1=(Px(x)) y1=(Px(mid)) x2=(Px(x + 24.0)) y2=(Px(mid))
                        stroke=(key.colour) stroke-width="2" stroke-dasharray=[dash(key.dashed)] {}
                    (marker(key.marker, x + 12.0, mid, key.colour, None))
                    text x=(Px(x + 30.0)) y=(Px(y)) fill="#1a1a1a" { (key.name) }
                }
                (content)
            }
        }
    }

    /// A centred note for when there is nothing to draw.
    fn no_data(&self) -> Markup {
        html! {
            text x=(Px((self.left + self.right) / 2.0)) y=(Px((self.top + self.bottom) / 2.0))
                text-anchor="middle" fill="#888" { "no data" }
        }
    }
}

/// The `stroke-dasharray` of a dashed line; none for a solid one.
fn dash(dashed: bool) -> Option<&'static str> {
    dashed.then_some("6 4")
}

/// A marker, with an optional hover tooltip (a native SVG `<title>`, no script needed).
fn marker(shape: Marker, x: f64, y: f64, colour: &str, tip: Option<&str>) -> Markup {
    let tip = html! {
        @if let Some(tip) = tip {
            title { (tip) }
        }
    };
    match shape {
        Marker::Circle => html! {
            circle cx=(Px(x)) cy=(Px(y)) r="4" fill=(colour) { (tip) }
        },
        Marker::Square => html! {
            rect x=(Px(x - 3.5)) y=(Px(y - 3.5)) width="7" height="7" fill=(colour) { (tip) }
        },
        Marker::Triangle => html! {
            path d={
                "M" (Px(x)) " " (Px(y - 5.0))
                "L" (Px(x + 4.5)) " " (Px(y + 3.5))
                "L" (Px(x - 4.5)) " " (Px(y + 3.5)) "Z"
            } fill=(colour) { (tip) }
        },
        Marker::Diamond => html! {
            path d={
                "M" (Px(x)) " " (Px(y - 5.0))
                "L" (Px(x + 5.0)) " " (Px(y))
                "L" (Px(x)) " " (Px(y + 5.0))
                "L" (Px(x - 5.0)) " " (Px(y)) "Z"
            } fill=(colour) { (tip) }
        },
        Marker::None => html! {},
    }
}

/// A line through `points` (pixels); nothing for fewer than two points.
fn polyline(points: &[(f64, f64)], colour: &str, dashed: bool, width: f64) -> Markup {
    if points.len() < 2 {
        return html! {};
    }
    let coords: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{},{}", Px(x), Px(y)))
        .collect();
    html! {
        polyline points=(coords.join(" ")) fill="none" stroke=(colour) stroke-width=(width)
            stroke-linejoin="round" stroke-dasharray=[dash(dashed)] {}
    }
}

/// Compact value for tooltips.
fn short(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

impl LineChart {
    /// Renders the chart as an inline `<svg class="figure">` element.
    pub fn to_svg(&self) -> Markup {
        let value_at =
            |s: &Series, i: usize| s.points.get(i).copied().flatten().filter(|v| v.is_finite());
        let n = self.categories.len();
        let values: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| (0..n).filter_map(move |i| value_at(s, i)))
            .chain(
                self.references
                    .iter()
                    .map(|r| r.y)
                    .filter(|y| y.is_finite()),
            )
            .collect();
        let (min, max) = min_max(&values).unwrap_or((0.0, 1.0));
        let keys: Vec<Key<'_>> = self
            .series
            .iter()
            .map(|s| Key {
                name: &s.name,
                colour: s.colour,
                marker: s.marker,
                dashed: s.dashed,
            })
            .collect();
        let plot = Plot::new(
            self.width,
            self.height,
            Axis::categories(&self.categories),
            Axis::nice(min, max, 5),
            &keys,
        );
        let content = html! {
            @if values.is_empty() {
                (plot.no_data())
            }
            @for reference in self.references.iter().filter(|r| r.y.is_finite()) {
                @let y = plot.sy(reference.y);
                line x1=(Px(plot.left)) y1=(Px(y)) x2=(Px(plot.right)) y2=(Px(y))
                    stroke=(reference.colour) stroke-width="1.2" stroke-dasharray="2 3" {}
                text x=(Px(plot.right - 2.0)) y=(Px(y - 4.0)) text-anchor="end" font-size="11"
                    fill=(reference.colour) { (reference.label) }
            }
            @for series in &self.series {
                // (category, value, x pixel, y pixel) of each drawable point.
                @let points: Vec<(usize, f64, f64, f64)> = (0..n)
                    .filter_map(|i| {
                        let v = value_at(series, i)?;
                        Some((i, v, plot.sx(i as f64 + 0.5), plot.sy(v)))
                    })
                    .collect();
                @let line: Vec<(f64, f64)> = points.iter().map(|&(_, _, x, y)| (x, y)).collect();
                (polyline(&line, series.colour, series.dashed, 2.0))
                @for &(i, v, x, y) in &points {
                    @let tip = format!("{}, {}: {}", series.name, self.categories[i], short(v));
                    (marker(series.marker, x, y, series.colour, Some(&tip)))
                }
            }
        };
        plot.svg(&self.title, &self.x_label, &self.y_label, &keys, content)
    }
}

impl CalibrationChart {
    /// Renders the chart as an inline `<svg class="figure">` element.
    pub fn to_svg(&self) -> Markup {
        let mut keys: Vec<Key<'_>> = self
            .series
            .iter()
            .map(|s| Key {
                name: &s.name,
                colour: s.colour,
                marker: s.marker,
                dashed: s.dashed,
            })
            .collect();
        keys.push(Key {
            name: "perfectly calibrated",
            colour: GREY,
            marker: Marker::None,
            dashed: true,
        });
        let plot = Plot::new(
            self.width,
            self.height,
            Axis::exact(0.0, 1.0, 5),
            Axis::exact(0.0, 1.0, 5),
            &keys,
        );
        let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
        let any = self.series.iter().any(|s| s.points.iter().any(finite));
        let content = html! {
            line x1=(Px(plot.sx(0.0))) y1=(Px(plot.sy(0.0))) x2=(Px(plot.sx(1.0)))
                y2=(Px(plot.sy(1.0))) stroke=(GREY) stroke-dasharray="6 4" {}
            @for series in &self.series {
                @let points: Vec<(f64, f64)> =
                    series.points.iter().copied().filter(finite).collect();
                @let pixels: Vec<(f64, f64)> = points
                    .iter()
                    .map(|&(x, y)| (plot.sx(x.clamp(0.0, 1.0)), plot.sy(y.clamp(0.0, 1.0))))
                    .collect();
                (polyline(&pixels, series.colour, series.dashed, 2.0))
                @for (&(px, py), &(x, y)) in pixels.iter().zip(&points) {
                    @let tip = format!(
                        "{}: predicted {}, observed {}",
                        series.name,
                        short(x),
                        short(y)
                    );
                    (marker(series.marker, px, py, series.colour, Some(&tip)))
                }
            }
            @if !any {
                (plot.no_data())
            }
        };
        plot.svg(
            &self.title,
            "mean predicted probability",
            "observed frequency",
            &keys,
            content,
        )
    }
}

impl HistogramChart {
    /// Renders the chart as an inline `<svg class="figure">` element.
    pub fn to_svg(&self) -> Markup {
        let usable: Vec<&HistogramSeries> = self
            .series
            .iter()
            .filter(|s| {
                !s.values.is_empty()
                    && s.lower.is_finite()
                    && s.upper.is_finite()
                    && s.upper > s.lower
            })
            .collect();
        let lo = usable.iter().map(|s| s.lower).fold(f64::INFINITY, f64::min);
        let hi = usable
            .iter()
            .map(|s| s.upper)
            .fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo < hi { (lo, hi) } else { (0.0, 1.0) };
        let top = usable
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let keys: Vec<Key<'_>> = self
            .series
            .iter()
            .map(|s| Key {
                name: &s.name,
                colour: s.colour,
                marker: Marker::None,
                dashed: s.dashed,
            })
            .collect();
        let y_axis = Axis::nice(0.0, if top > 0.0 { top } else { 1.0 }, 5);
        let plot = Plot::new(
            self.width,
            self.height,
            Axis::exact(lo, hi, 6),
            y_axis,
            &keys,
        );
        let steps = |series: &HistogramSeries| {
            let width = (series.upper - series.lower) / series.values.len() as f64;
            let base = plot.sy(0.0);
            let mut steps = vec![(plot.sx(series.lower), base)];
            for (i, &v) in series.values.iter().enumerate() {
                let y = plot.sy(if v.is_finite() { v.max(0.0) } else { 0.0 });
                let x0 = series.lower + width * i as f64;
                steps.push((plot.sx(x0), y));
                steps.push((plot.sx(x0 + width), y));
            }
            steps.push((plot.sx(series.upper), base));
            steps
        };
        let content = html! {
            @if usable.is_empty() {
                (plot.no_data())
            }
            @for &series in &usable {
                (polyline(&steps(series), series.colour, series.dashed, 1.8))
            }
        };
        plot.svg(&self.title, &self.x_label, &self.y_label, &keys, content)
    }
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut it = values.iter().copied().filter(|v| v.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(0.443, 0.517, 5);
        assert!(t[0] <= 0.443 && *t.last().unwrap() >= 0.517);
        let step = t[1] - t[0];
        assert!((step - 0.02).abs() < 1e-12, "{t:?}");
        let t = nice_ticks(3.0, 3.0, 5);
        assert!(t.len() >= 2 && t[0] < 3.0 && *t.last().unwrap() > 3.0);
        assert_eq!(
            nice_ticks(f64::NAN, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(-7.0, 130.0, 5);
        assert_eq!(t, vec![-50.0, 0.0, 50.0, 100.0, 150.0]);
    }

    #[test]
    fn tick_labels_use_step_decimals() {
        let labels: Vec<String> = tick_labels(&nice_ticks(0.0, 1.0, 5))
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let labels: Vec<String> = tick_labels(&[-50.0, 0.0, 50.0])
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(labels, ["-50", "0", "50"]);
    }

    fn line_chart() -> LineChart {
        LineChart {
            title: "Loss <by> cadence".into(),
            x_label: "cadence".into(),
            y_label: "log loss".into(),
            categories: vec!["online".into(), "1h".into(), "1d".into()],
            series: vec![
                Series {
                    name: "batch".into(),
                    colour: BLUE,
                    marker: Marker::Circle,
                    dashed: false,
                    points: vec![None, Some(0.41), Some(0.44)],
                },
                Series {
                    name: "online".into(),
                    colour: GREEN,
                    marker: Marker::Diamond,
                    dashed: false,
                    points: vec![Some(0.40), Some(f64::NAN)],
                },
            ],
            references: vec![ReferenceLine {
                label: "online features".into(),
                colour: GREEN,
                y: 0.40,
            }],
            width: 600,
            height: 320,
        }
    }

    #[test]
    fn line_chart_svg() {
        let svg = line_chart().to_svg().into_string();
        assert!(svg.starts_with(
            "<svg class=\"figure\" width=\"600\" height=\"320\" viewBox=\"0 0 600 320\""
        ));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("<title>Loss &lt;by&gt; cadence</title>"));
        assert_eq!(
            svg.matches("<polyline").count(),
            1,
            "single-point series draws no line"
        );
        assert!(svg.contains(">online</text>") && svg.contains(">1d</text>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert!(!svg.contains("http"));
    }

    #[test]
    fn line_chart_without_data() {
        let mut chart = line_chart();
        chart.series.clear();
        chart.references.clear();
        assert!(chart.to_svg().into_string().contains("no data"));
    }

    /// Every label the caller gives (title, captions, legend, categories, tooltips) is
    /// text, never markup.
    #[test]
    fn chart_text_is_escaped() {
        let mut chart = line_chart();
        chart.x_label = "x <i>&</i>".into();
        chart.y_label = "y \"quoted\"".into();
        chart.categories[1] = "<script>1h".into();
        chart.series[0].name = "batch & <b>co</b>".into();
        chart.references[0].label = "<ref>".into();
        let svg = chart.to_svg().into_string();
        for raw in ["<i>", "<script", "<b>", "<ref>", "\"quoted"] {
            assert!(!svg.contains(raw), "{raw} in {svg}");
        }
        assert!(svg.contains(">x &lt;i&gt;&amp;&lt;/i&gt;</text>"), "{svg}");
        assert!(svg.contains(">y &quot;quoted&quot;</text>"), "{svg}");
        assert!(svg.contains(">&lt;script&gt;1h</text>"), "{svg}");
        assert!(
            svg.contains(">batch &amp; &lt;b&gt;co&lt;/b&gt;</text>"),
            "{svg}"
        );
        assert!(
            svg.contains(
                "<title>batch &amp; &lt;b&gt;co&lt;/b&gt;, &lt;script&gt;1h: 0.4100</title>"
            ),
            "{svg}"
        );
        assert!(svg.contains(">&lt;ref&gt;</text>"), "{svg}");
    }

    #[test]
    fn calibration_and_histogram_svg() {
        let cal = CalibrationChart {
            title: "Calibration".into(),
            series: vec![XySeries {
                name: "daily batch".into(),
                colour: BLUE,
                marker: Marker::Square,
                dashed: false,
                points: vec![(0.05, 0.04), (f64::NAN, 0.2), (0.5, 0.55), (0.9, 0.85)],
            }],
            width: 420,
            height: 400,
        }
        .to_svg()
        .into_string();
        assert!(cal.contains("perfectly calibrated"));
        assert_eq!(
            cal.matches("<rect x=").count(),
            4,
            "3 markers + 1 legend marker"
        );
        let hist = HistogramChart {
            title: "Scores".into(),
            x_label: "score".into(),
            y_label: "share of rows (%)".into(),
            series: vec![HistogramSeries {
                name: "online".into(),
                colour: GREEN,
                dashed: false,
                lower: 0.0,
                upper: 1.0,
                values: vec![10.0, 30.0, 60.0],
            }],
            width: 500,
            height: 300,
        }
        .to_svg()
        .into_string();
        let points = hist.split("<polyline points=\"").nth(1).unwrap();
        assert_eq!(points.split('"').next().unwrap().split(' ').count(), 8);
    }
}
