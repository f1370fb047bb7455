//! A small SVG writer for charts: a document, scales (linear or log10) with readable ticks, and
//! panels that draw their axes, grid, tick labels and titles.

use std::fmt::Write;

/// An SVG document being written.
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

/// Marker shapes, so series stay apart without colour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
}

/// Escapes text for SVG.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        let mut svg = Svg { width, height, body: String::new() };
        svg.rect(0.0, 0.0, width, height, "white", "none");
        svg
    }

    /// Text at (x, y); `anchor` is start, middle or end.
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, content: &str) {
        let _ = writeln!(self.body, r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}">{}</text>"#, escape(content));
    }

    /// Bold text, for titles.
    pub fn title(&mut self, x: f64, y: f64, size: f64, content: &str) {
        let _ = writeln!(self.body, r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" font-weight="bold" text-anchor="middle">{}</text>"#, escape(content));
    }

    /// Text turned 90 degrees anticlockwise (a y-axis label), centred on (x, y).
    pub fn vertical_text(&mut self, x: f64, y: f64, size: f64, content: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="middle" transform="rotate(-90 {x:.1} {y:.1})">{}</text>"#,
            escape(content)
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(self.body, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="{width}"/>"#);
    }

    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64) {
        let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(self.body, r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="{width}"/>"#, pts.join(" "));
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, stroke: &str) {
        let _ = writeln!(self.body, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" stroke="{stroke}"/>"#);
    }

    /// A marker centred on (x, y); hollow ones are outlined only.
    pub fn marker(&mut self, shape: Shape, x: f64, y: f64, size: f64, color: &str, hollow: bool) {
        let fill = if hollow { "white" } else { color };
        let r = size / 2.0;
        let style = format!(r#"fill="{fill}" stroke="{color}" stroke-width="1.5" fill-opacity="0.85""#);
        let _ = match shape {
            Shape::Circle => writeln!(self.body, r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" {style}/>"#),
            Shape::Square => writeln!(self.body, r#"<rect x="{:.1}" y="{:.1}" width="{size:.1}" height="{size:.1}" {style}/>"#, x - r, y - r),
            Shape::Triangle => writeln!(
                self.body,
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" {style}/>"#,
                x,
                y - r * 1.15,
                x - r * 1.15,
                y + r * 0.85,
                x + r * 1.15,
                y + r * 0.85
            ),
            Shape::Diamond => writeln!(
                self.body,
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" {style}/>"#,
                x,
                y - r * 1.3,
                x + r * 1.3,
                y,
                x,
                y + r * 1.3,
                x - r * 1.3,
                y
            ),
        };
    }

    /// The finished document.
    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n{}</svg>\n",
            self.body,
            w = self.width,
            h = self.height
        )
    }
}

/// A map from data values to pixels along one axis.
#[derive(Clone, Debug)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    /// Pixels of `lo` and `hi` (y axes run upwards: px_lo > px_hi).
    pub px_lo: f64,
    pub px_hi: f64,
    /// Ticks only at whole numbers (counts).
    pub whole: bool,
}

impl Scale {
    /// A linear scale over [lo, hi] widened to whole tick steps.
    pub fn linear(lo: f64, hi: f64) -> Scale {
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
        let step = nice_step((hi - lo) / 5.0);
        Scale { lo: (lo / step).floor() * step, hi: (hi / step).ceil() * step, log: false, px_lo: 0.0, px_hi: 1.0, whole: false }
    }

    /// A linear scale for counts over [0, hi]: ticks at whole numbers only.
    pub fn counts(hi: f64) -> Scale {
        let step = nice_step(hi / 5.0).max(1.0);
        Scale { lo: 0.0, hi: (hi.max(1.0) / step).ceil() * step, log: false, px_lo: 0.0, px_hi: 1.0, whole: true }
    }

    /// A log10 scale over whole decades covering [lo, hi] (both positive).
    pub fn log10(lo: f64, hi: f64) -> Scale {
        let (lo, hi) = (lo.max(f64::MIN_POSITIVE), hi.max(lo));
        let (a, b) = (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0));
        Scale { lo: 10f64.powf(a), hi: 10f64.powf(b), log: true, px_lo: 0.0, px_hi: 1.0, whole: false }
    }

    /// A scale for positive quantities such as times: log10 when they span more than `ratio`.
    pub fn auto_positive(values: &[f64], ratio: f64) -> Scale {
        let positive: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0 && v.is_finite()).collect();
        let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = positive.iter().copied().fold(0.0, f64::max);
        if positive.is_empty() {
            Scale::linear(0.0, 1.0)
        } else if hi / lo > ratio {
            Scale::log10(lo, hi)
        } else {
            Scale::linear(0.0, hi)
        }
    }

    pub fn with_pixels(mut self, px_lo: f64, px_hi: f64) -> Scale {
        self.px_lo = px_lo;
        self.px_hi = px_hi;
        self
    }

    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// The pixel of value `v`.
    pub fn px(&self, v: f64) -> f64 {
        self.px_lo + self.fraction(v) * (self.px_hi - self.px_lo)
    }

    /// Tick values with their labels.
    pub fn ticks(&self) -> Vec<(f64, String)> {
        if self.log {
            return log_ticks(self.lo, self.hi);
        }
        let step = nice_step((self.hi - self.lo) / 5.0);
        let step = if self.whole { step.max(1.0) } else { step };
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        let first = (self.lo / step).ceil() as i64;
        let last = (self.hi / step + 1e-9).floor() as i64;
        (first..=last)
            .map(|i| {
                let v = i as f64 * step;
                // Avoid "-0.0".
                let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
                (v, format!("{v:.decimals$}"))
            })
            .collect()
    }
}

/// 1, 2 or 5 times a power of ten, the nearest at or above `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let m = raw / power;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Decades, and 2x and 5x between them when the range is short.
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let (a, b) = (lo.log10().round() as i32, hi.log10().round() as i32);
    let mults: &[f64] = if b - a <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
    let step = ((b - a) as f64 / 8.0).ceil().max(1.0) as i32;
    let mut ticks = Vec::new();
    for e in (a..=b).step_by(step as usize) {
        for m in mults {
            let v = m * 10f64.powi(e);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                ticks.push((v, format_number(v)));
            }
        }
    }
    ticks
}

/// A compact label: plain for ordinary magnitudes, `1e-5` style beyond.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let e = a.log10().floor() as i32;
        let m = v / 10f64.powi(e);
        if (m - m.round()).abs() < 1e-9 {
            format!("{}e{e}", m.round())
        } else {
            format!("{m:.1}e{e}")
        }
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A plot area with its two scales.
pub struct Panel {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    pub x: Scale,
    pub y: Scale,
}

impl Panel {
    pub fn new(left: f64, top: f64, width: f64, height: f64, x: Scale, y: Scale) -> Panel {
        let x = x.with_pixels(left, left + width);
        let y = y.with_pixels(top + height, top);
        Panel { left, top, width, height, x, y }
    }

    /// The pixel of a data point.
    pub fn at(&self, x: f64, y: f64) -> (f64, f64) {
        (self.x.px(x), self.y.px(y))
    }

    /// Frame, grid, ticks with labels, axis labels and the panel's title.
    pub fn draw_axes(&self, svg: &mut Svg, title: &str, x_label: &str, y_label: &str) {
        let (l, t, w, h) = (self.left, self.top, self.width, self.height);
        for (v, label) in self.x.ticks() {
            let px = self.x.px(v);
            svg.line(px, t, px, t + h, "#e4e4e4", 1.0);
            svg.line(px, t + h, px, t + h + 5.0, "black", 1.0);
            svg.text(px, t + h + 19.0, 12.0, "middle", &label);
        }
        for (v, label) in self.y.ticks() {
            let py = self.y.px(v);
            svg.line(l, py, l + w, py, "#e4e4e4", 1.0);
            svg.line(l - 5.0, py, l, py, "black", 1.0);
            svg.text(l - 8.0, py + 4.0, 12.0, "end", &label);
        }
        svg.rect(l, t, w, h, "none", "black");
        svg.title(l + w / 2.0, t - 10.0, 14.0, title);
        svg.text(l + w / 2.0, t + h + 40.0, 13.0, "middle", x_label);
        svg.vertical_text(l - 48.0, t + h / 2.0, 13.0, y_label);
    }
}

impl Panel {
    /// The panel's frame and title with "no data" and why inside, instead of empty axes.
    pub fn draw_no_data(&self, svg: &mut Svg, title: &str, why: &str) {
        let (l, t, w, h) = (self.left, self.top, self.width, self.height);
        svg.rect(l, t, w, h, "none", "#999999");
        svg.title(l + w / 2.0, t - 10.0, 14.0, title);
        svg.title(l + w / 2.0, t + h / 2.0, 16.0, "no data");
        svg.text(l + w / 2.0, t + h / 2.0 + 22.0, 12.0, "middle", why);
    }
}

/// One legend entry: a marker (or a line when `shape` is None), its colour and text.
pub struct LegendEntry {
    pub shape: Option<Shape>,
    pub color: String,
    pub hollow: bool,
    pub label: String,
}

/// A legend in a row starting at (x, y).
pub fn draw_legend_row(svg: &mut Svg, x: f64, y: f64, entries: &[LegendEntry]) {
    let mut cx = x;
    for e in entries {
        match e.shape {
            Some(shape) => svg.marker(shape, cx + 8.0, y - 4.0, 10.0, &e.color, e.hollow),
            None => svg.line(cx, y - 4.0, cx + 16.0, y - 4.0, &e.color, 2.0),
        }
        svg.text(cx + 22.0, y, 13.0, "start", &e.label);
        // A rough width: DejaVu Sans at 13 px averages about 7.5 px a character.
        cx += 40.0 + 7.5 * e.label.chars().count() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        assert_eq!(nice_step(0.17), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(70.0), 100.0);
        let s = Scale::linear(-0.42, 1.0);
        assert_eq!((s.lo, s.hi), (-0.5, 1.0));
        let labels: Vec<String> = s.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["-0.5", "0.0", "0.5", "1.0"]);
        let labels: Vec<String> = Scale::linear(0.0, 0.93).ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let log = Scale::log10(0.03, 250.0);
        assert_eq!((log.lo, log.hi), (0.01, 1000.0));
        let labels: Vec<String> = log.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10", "100", "1000"]);
        assert_eq!(format_number(1e50), "1e50");
        assert_eq!(format_number(2.5e-7), "2.5e-7");
        assert_eq!(format_number(0.25), "0.25");
    }

    #[test]
    fn count_ticks_are_whole_numbers() {
        for hi in [1.0, 2.0, 3.0, 7.0, 12.0, 230.0] {
            let ticks = Scale::counts(hi).ticks();
            assert!(ticks.len() >= 2, "{hi}: {ticks:?}");
            for (v, label) in ticks {
                assert_eq!(v.fract(), 0.0, "{hi}: tick {v}");
                assert!(!label.contains('.'), "{hi}: label {label}");
            }
        }
    }

    #[test]
    fn pixels_run_the_right_way() {
        let p = Panel::new(100.0, 50.0, 400.0, 300.0, Scale::linear(0.0, 1.0), Scale::log10(1.0, 100.0));
        assert_eq!(p.at(0.0, 1.0), (100.0, 350.0));
        assert_eq!(p.at(1.0, 100.0), (500.0, 50.0));
        assert!((p.at(0.5, 10.0).1 - 200.0).abs() < 1e-9);
    }

    #[test]
    fn text_is_escaped() {
        let mut svg = Svg::new(10.0, 10.0);
        svg.text(0.0, 0.0, 10.0, "start", "a<b & \"c\"");
        assert!(svg.finish().contains("a&lt;b &amp; &quot;c&quot;"));
    }
}
