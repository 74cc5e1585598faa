//! `--plot`: the latency percentile distribution as a hand-written SVG. The x axis is the
//! percentile on a log scale of `1 / (1 - p)` (0, 90, 99, 99.9, 99.99), as HdrHistogram's
//! plotter draws it; the y axis is latency in milliseconds, linear from zero.

use std::fmt::Write as _;

use hycod::metrics::LatencyHistogram;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const MARGIN: f64 = 60.0;
/// The x axis ends at 99.99 %, i.e. 10^4 on the `1 / (1 - p)` scale.
const DECADES: f64 = 4.0;
const GRID: &str = "#ddd";
const CURVE: &str = "#1f77b4";
const LABELS: [(f64, &str); 5] = [
    (0.0, "0%"),
    (1.0, "90%"),
    (2.0, "99%"),
    (3.0, "99.9%"),
    (4.0, "99.99%"),
];
/// Points per decade of the curve.
const STEPS_PER_DECADE: u32 = 50;

/// The percentile at position `x` decades: `1 - 10^-x`.
fn quantile_at(decades: f64) -> f64 {
    1.0 - 10f64.powf(-decades)
}

/// Renders the distribution of `histogram`, titled `title` (XML-escaped here).
pub(crate) fn render(histogram: &LatencyHistogram, title: &str) -> String {
    let steps = STEPS_PER_DECADE * 4;
    let points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let decades = DECADES * f64::from(i) / f64::from(steps);
            let millis = histogram
                .value_at_quantile(quantile_at(decades))
                .as_secs_f64()
                * 1e3;
            (decades, millis)
        })
        .collect();
    let top = points
        .iter()
        .map(|&(_, y)| y)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let sx = |d: f64| MARGIN + d / DECADES * plot_w;
    let sy = |ms: f64| HEIGHT - MARGIN - ms / top * plot_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{MARGIN}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{b}" stroke="black"/>"#,
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    );
    for (decades, label) in LABELS {
        let x = sx(decades);
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{MARGIN}" x2="{x:.1}" y2="{b}" stroke="{GRID}"/><text x="{x:.1}" y="{t}" text-anchor="middle">{label}</text>"#,
            b = HEIGHT - MARGIN,
            t = HEIGHT - MARGIN + 18.0
        );
    }
    for tick in 0..=4 {
        let ms = top * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{y:.1}" text-anchor="end">{ms:.3}</text>"#,
            x = MARGIN - 6.0,
            y = sy(ms) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text><text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency (ms)</text>"#,
        WIDTH / 2.0,
        HEIGHT - 16.0,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    let mut path = String::new();
    for (i, &(d, ms)) in points.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            sx(d),
            sy(ms)
        );
    }
    let _ = writeln!(
        svg,
        r#"<path d="{}" fill="none" stroke="{CURVE}" stroke-width="2"/>"#,
        path.trim_end()
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_a_curve_axis_labels_and_balanced_tags() {
        let mut h = LatencyHistogram::new();
        for v in 1..=10_000 {
            h.record_micros(v);
        }
        let svg = render(&h, "http <1 KiB> & more");
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<path ").count(), 1);
        for label in ["0%", "90%", "99%", "99.9%", "99.99%", "percentile"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(svg.contains("http &lt;1 KiB&gt; &amp; more"));
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        let path = svg.split("d=\"").nth(1).and_then(|s| s.split('"').next());
        assert_eq!(path.map(|p| p.matches('L').count()), Some(200));
    }

    #[test]
    fn an_empty_histogram_still_renders() {
        let svg = render(&LatencyHistogram::new(), "empty");
        assert!(svg.contains("<path "));
    }

    #[test]
    fn the_axis_reaches_four_nines() {
        assert!((quantile_at(4.0) - 0.9999).abs() < 1e-12);
        assert_eq!(quantile_at(0.0), 0.0);
    }
}
