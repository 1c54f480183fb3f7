//! Tiny, dependency-free SVG chart primitives for the HTML reports.
//!
//! Charts are meant to be inlined in HTML: the root `<svg>` has no `xmlns`
//! (the HTML parser supplies it), so the output holds no URL at all.
//! Missing or non-finite values are skipped, never drawn.

use std::fmt::Write as _;

/// Okabe–Ito blue, distinguishable under the common colour-vision deficiencies.
pub const BLUE: &str = "#0072B2";
/// Okabe–Ito orange.
pub const ORANGE: &str = "#E69F00";
/// Okabe–Ito bluish green.
pub const GREEN: &str = "#009E73";
/// Neutral grey, for baselines and references.
pub const GREY: &str = "#6E6E6E";

/// Writing to a `String` cannot fail, so the `fmt::Result` is dropped here once.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

/// One line of a [`LineChart`]: a value (or a gap) per x position.
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
    /// One entry per x position; `None` or non-finite values are skipped.
    pub points: Vec<Option<f64>>,
}

/// The x axis of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
pub enum XAxis {
    /// Evenly spaced categories, labelled as given.
    Categories(Vec<String>),
    /// Numeric positions, scaled linearly with "nice" ticks.
    #[allow(
        dead_code,
        reason = "part of the chart API; the current reports plot cadences as categories"
    )]
    Values(Vec<f64>),
}

impl XAxis {
    fn len(&self) -> usize {
        match self {
            Self::Categories(c) => c.len(),
            Self::Values(v) => v.len(),
        }
    }
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

/// A line chart over categorical or numeric x positions.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title, shown on top and as the SVG `<title>`.
    pub title: String,
    /// X axis caption.
    pub x_label: String,
    /// Y axis caption.
    pub y_label: String,
    /// X positions shared by every series.
    pub x: XAxis,
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

    /// Opens the `<svg>`, writes `<title>`, the visible title, grid, axes and legend.
    fn start(&self, out: &mut String, title: &str, x_label: &str, y_label: &str, keys: &[Key<'_>]) {
        let title = escape(title);
        put!(
            out,
            "<svg class=\"figure\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
             font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\" font-size=\"12\">\
             <title>{title}</title>\
             <rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\
             <text x=\"{tx}\" y=\"20\" font-size=\"14\" font-weight=\"600\" fill=\"#1a1a1a\">{title}</text>",
            w = self.width,
            h = self.height,
            tx = self.left,
        );
        // Horizontal grid and y ticks.
        for (v, label) in &self.y.ticks {
            let y = self.sy(*v);
            put!(
                out,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{}</text>",
                self.left,
                self.right,
                self.left - 6.0,
                y + 4.0,
                escape(label),
            );
        }
        // X ticks.
        for (v, label) in &self.x.ticks {
            let x = self.sx(*v);
            put!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
                self.bottom,
                self.bottom + 5.0,
                self.bottom + 18.0,
                escape(label),
            );
        }
        // Axis lines and captions.
        put!(
            out,
            "<path d=\"M{l:.1} {t:.1}V{b:.1}H{r:.1}\" fill=\"none\" stroke=\"#444\"/>\
             <text x=\"{cx:.1}\" y=\"{xy:.1}\" text-anchor=\"middle\" fill=\"#1a1a1a\">{xl}</text>\
             <text transform=\"translate(16 {cy:.1}) rotate(-90)\" text-anchor=\"middle\" fill=\"#1a1a1a\">{yl}</text>",
            l = self.left,
            t = self.top,
            b = self.bottom,
            r = self.right,
            cx = (self.left + self.right) / 2.0,
            xy = self.height - 10.0,
            xl = escape(x_label),
            cy = (self.top + self.bottom) / 2.0,
            yl = escape(y_label),
        );
        for (key, &(x, y)) in keys.iter().zip(&self.legend) {
            let mid = y - 4.0;
            put!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{mid:.1}\" x2=\"{:.1}\" y2=\"{mid:.1}\" stroke=\"{}\" stroke-width=\"2\"{}/>",
                x + 24.0,
                key.colour,
                dash(key.dashed),
            );
            marker(out, key.marker, x + 12.0, mid, key.colour, None);
            put!(
                out,
                "<text x=\"{:.1}\" y=\"{y:.1}\" fill=\"#1a1a1a\">{}</text>",
                x + 30.0,
                escape(key.name),
            );
        }
    }

    /// Writes a centred note when there is nothing to draw.
    fn no_data(&self, out: &mut String) {
        put!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\">no data</text>",
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        );
    }
}

fn dash(dashed: bool) -> &'static str {
    if dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    }
}

/// Draws a marker, with an optional hover tooltip (a native SVG `<title>`, no script needed).
fn marker(out: &mut String, shape: Marker, x: f64, y: f64, colour: &str, tip: Option<&str>) {
    let tip = tip
        .map(|t| format!("<title>{}</title>", escape(t)))
        .unwrap_or_default();
    match shape {
        Marker::Circle => put!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{colour}\">{tip}</circle>"
        ),
        Marker::Square => put!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"{colour}\">{tip}</rect>",
            x - 3.5,
            y - 3.5,
        ),
        Marker::Triangle => put!(
            out,
            "<path d=\"M{x:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z\" fill=\"{colour}\">{tip}</path>",
            y - 5.0,
            x + 4.5,
            y + 3.5,
            x - 4.5,
            y + 3.5,
        ),
        Marker::Diamond => put!(
            out,
            "<path d=\"M{x:.1} {:.1}L{:.1} {y:.1}L{x:.1} {:.1}L{:.1} {y:.1}Z\" fill=\"{colour}\">{tip}</path>",
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0,
        ),
        Marker::None => {}
    }
}

fn polyline(out: &mut String, points: &[(f64, f64)], colour: &str, dashed: bool, width: f64) {
    if points.len() < 2 {
        return;
    }
    let coords: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    put!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" \
         stroke-linejoin=\"round\"{}/>",
        coords.join(" "),
        dash(dashed),
    );
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
    pub fn to_svg(&self) -> String {
        let n = self.x.len();
        let value_at =
            |s: &Series, i: usize| s.points.get(i).copied().flatten().filter(|v| v.is_finite());
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
        let x_axis = match &self.x {
            XAxis::Categories(labels) => Axis::categories(labels),
            XAxis::Values(xs) => {
                let finite: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
                let (lo, hi) = min_max(&finite).unwrap_or((0.0, 1.0));
                Axis::nice(lo, hi, 6)
            }
        };
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
            x_axis,
            Axis::nice(min, max, 5),
            &keys,
        );
        let mut out = String::new();
        plot.start(&mut out, &self.title, &self.x_label, &self.y_label, &keys);
        if values.is_empty() {
            plot.no_data(&mut out);
        }
        let x_of = |i: usize| match &self.x {
            XAxis::Categories(_) => Some(plot.sx(i as f64 + 0.5)),
            XAxis::Values(xs) => xs.get(i).filter(|x| x.is_finite()).map(|&x| plot.sx(x)),
        };
        let tick_name = |i: usize| match &self.x {
            XAxis::Categories(labels) => labels.get(i).cloned().unwrap_or_default(),
            XAxis::Values(xs) => xs.get(i).map(|x| short(*x)).unwrap_or_default(),
        };
        for reference in self.references.iter().filter(|r| r.y.is_finite()) {
            let y = plot.sy(reference.y);
            put!(
                out,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" \
                 stroke-width=\"1.2\" stroke-dasharray=\"2 3\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"{}\">{}</text>",
                plot.left,
                plot.right,
                reference.colour,
                plot.right - 2.0,
                y - 4.0,
                reference.colour,
                escape(&reference.label),
            );
        }
        for series in &self.series {
            let points: Vec<(usize, f64, f64)> = (0..n)
                .filter_map(|i| Some((i, x_of(i)?, plot.sy(value_at(series, i)?))))
                .collect();
            let line: Vec<(f64, f64)> = points.iter().map(|&(_, x, y)| (x, y)).collect();
            polyline(&mut out, &line, series.colour, series.dashed, 2.0);
            for &(i, x, y) in &points {
                let tip = value_at(series, i)
                    .map(|v| format!("{}, {}: {}", series.name, tick_name(i), short(v)));
                marker(&mut out, series.marker, x, y, series.colour, tip.as_deref());
            }
        }
        out.push_str("</svg>");
        out
    }
}

impl CalibrationChart {
    /// Renders the chart as an inline `<svg class="figure">` element.
    pub fn to_svg(&self) -> String {
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
        let mut out = String::new();
        plot.start(
            &mut out,
            &self.title,
            "mean predicted probability",
            "observed frequency",
            &keys,
        );
        put!(
            out,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{GREY}\" stroke-dasharray=\"6 4\"/>",
            plot.sx(0.0),
            plot.sy(0.0),
            plot.sx(1.0),
            plot.sy(1.0),
        );
        let mut any = false;
        for series in &self.series {
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            any |= !points.is_empty();
            let pixels: Vec<(f64, f64)> = points
                .iter()
                .map(|&(x, y)| (plot.sx(x.clamp(0.0, 1.0)), plot.sy(y.clamp(0.0, 1.0))))
                .collect();
            polyline(&mut out, &pixels, series.colour, series.dashed, 2.0);
            for (&(px, py), &(x, y)) in pixels.iter().zip(&points) {
                let tip = format!(
                    "{}: predicted {}, observed {}",
                    series.name,
                    short(x),
                    short(y)
                );
                marker(&mut out, series.marker, px, py, series.colour, Some(&tip));
            }
        }
        if !any {
            plot.no_data(&mut out);
        }
        out.push_str("</svg>");
        out
    }
}

impl HistogramChart {
    /// Renders the chart as an inline `<svg class="figure">` element.
    pub fn to_svg(&self) -> String {
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
        let mut out = String::new();
        plot.start(&mut out, &self.title, &self.x_label, &self.y_label, &keys);
        if usable.is_empty() {
            plot.no_data(&mut out);
        }
        for series in usable {
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
            polyline(&mut out, &steps, series.colour, series.dashed, 1.8);
        }
        out.push_str("</svg>");
        out
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

    #[test]
    fn escape_html() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }

    fn line_chart() -> LineChart {
        LineChart {
            title: "Loss <by> cadence".into(),
            x_label: "cadence".into(),
            y_label: "log loss".into(),
            x: XAxis::Categories(vec!["online".into(), "1h".into(), "1d".into()]),
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
        let svg = line_chart().to_svg();
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
    fn line_chart_numeric_x_and_empty() {
        let mut chart = line_chart();
        chart.x = XAxis::Values(vec![0.0, 1.0, 24.0]);
        let svg = chart.to_svg();
        assert!(svg.contains("<polyline points=\""));
        chart.series.clear();
        chart.references.clear();
        assert!(chart.to_svg().contains("no data"));
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
        .to_svg();
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
        .to_svg();
        let points = hist.split("<polyline points=\"").nth(1).unwrap();
        assert_eq!(points.split('"').next().unwrap().split(' ').count(), 8);
    }
}
