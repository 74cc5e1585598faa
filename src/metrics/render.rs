//! Prometheus text exposition format 0.0.4 (architecture §4;
//! <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>).
//!
//! One `# HELP` and one `# TYPE` line per family, then its samples. Label values escape `\`,
//! `"` and newline; help text escapes `\` and newline. Histograms render as cumulative
//! `_bucket{le="..."}` lines over [`BUCKET_LADDER_MICROS`] and `+Inf`, then `_sum` and
//! `_count`; bounds and sums are in seconds, written as exact decimals of the recorded
//! microseconds (`0.00025`, `2.5`, `60`), never through floating point.

use std::fmt;

use super::desc::MetricDesc;
use super::histogram::{LatencyHistogram, BUCKET_LADDER_MICROS};
use super::snapshot::{SeriesValue, Snapshot};

/// The `Content-Type` of a `/metrics` response in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole exposition of a snapshot as text.
pub fn render(snapshot: &Snapshot) -> String {
    PrometheusText(snapshot).to_string()
}

/// Displays a snapshot in the text exposition format, for writing into any `fmt::Write`.
#[derive(Debug, Clone, Copy)]
pub struct PrometheusText<'a>(pub &'a Snapshot);

impl fmt::Display for PrometheusText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for family in self.0.families() {
            let desc = family.desc;
            writeln!(f, "# HELP {} {}", desc.name, EscapedHelp(desc.help))?;
            writeln!(f, "# TYPE {} {}", desc.name, desc.kind)?;
            for (values, value) in &family.series {
                let labels = Labels {
                    names: desc.label_names,
                    values,
                };
                match value {
                    SeriesValue::Counter(count) => {
                        writeln!(f, "{}{} {count}", desc.name, labels.with_le(None))?;
                    }
                    SeriesValue::Gauge(level) => {
                        writeln!(f, "{}{} {level}", desc.name, labels.with_le(None))?;
                    }
                    SeriesValue::Histogram(histogram) => {
                        write_histogram(f, desc, &labels, histogram)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn write_histogram(
    f: &mut fmt::Formatter<'_>,
    desc: &MetricDesc,
    labels: &Labels<'_>,
    histogram: &LatencyHistogram,
) -> fmt::Result {
    let name = desc.name;
    let buckets = histogram.cumulative_buckets();
    for (&bound, count) in BUCKET_LADDER_MICROS.iter().zip(buckets) {
        let le = Le::Micros(bound);
        writeln!(f, "{name}_bucket{} {count}", labels.with_le(Some(le)))?;
    }
    let count = histogram.count();
    writeln!(f, "{name}_bucket{} {count}", labels.with_le(Some(Le::Inf)))?;
    let sum = Seconds(histogram.sum_micros());
    writeln!(f, "{name}_sum{} {sum}", labels.with_le(None))?;
    writeln!(f, "{name}_count{} {count}", labels.with_le(None))
}

/// A series' label names and values, rendered `{a="x",b="y"}` (nothing when empty).
struct Labels<'a> {
    names: &'static [&'static str],
    values: &'a [String],
}

impl<'a> Labels<'a> {
    fn with_le(&'a self, le: Option<Le>) -> LabelSet<'a> {
        LabelSet { labels: self, le }
    }
}

/// The labels of one sample line, plus the `le` bound of a histogram bucket.
struct LabelSet<'a> {
    labels: &'a Labels<'a>,
    le: Option<Le>,
}

impl fmt::Display for LabelSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs = self.labels.names.iter().zip(self.labels.values.iter());
        if self.labels.names.is_empty() && self.le.is_none() {
            return Ok(());
        }
        f.write_str("{")?;
        let mut separator = "";
        for (name, value) in pairs {
            write!(f, "{separator}{name}=\"{}\"", EscapedLabelValue(value))?;
            separator = ",";
        }
        match self.le {
            Some(Le::Micros(bound)) => write!(f, "{separator}le=\"{}\"", Seconds(bound))?,
            Some(Le::Inf) => write!(f, "{separator}le=\"+Inf\"")?,
            None => {}
        }
        f.write_str("}")
    }
}

/// A histogram bucket's upper bound.
#[derive(Clone, Copy)]
enum Le {
    Micros(u64),
    Inf,
}

/// Microseconds written as an exact decimal number of seconds.
struct Seconds(u64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000;
        let fraction = self.0 % 1_000_000;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// A label value with `\`, `"` and newline escaped.
struct EscapedLabelValue<'a>(&'a str);

impl fmt::Display for EscapedLabelValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                other => fmt::Write::write_char(f, other)?,
            }
        }
        Ok(())
    }
}

/// Help text with `\` and newline escaped.
struct EscapedHelp<'a>(&'a str);

impl fmt::Display for EscapedHelp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                other => fmt::Write::write_char(f, other)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use prometheus_parse::{Sample, Scrape, Value};

    use super::*;
    use crate::metrics::shard::Shard;

    static ACCEPTED: MetricDesc = MetricDesc::counter(
        "hycod_streams_accepted_total",
        "Streams accepted.",
        &["hybrid_connection"],
    );
    static REJECTED: MetricDesc = MetricDesc::counter(
        "hycod_streams_rejected_total",
        "Streams rejected, by reason.",
        &["hybrid_connection", "reason"],
    );
    static ONLINE: MetricDesc = MetricDesc::gauge(
        "hycod_listener_online",
        "Listener online.",
        &["hybrid_connection"],
    );
    static UPTIME: MetricDesc = MetricDesc::gauge("hycod_uptime_units", "No labels.", &[]);
    static CONNECT: MetricDesc = MetricDesc::histogram(
        "hycod_target_connect_seconds",
        "Target connect latency.",
        &["hybrid_connection"],
    );
    static PLAIN: MetricDesc = MetricDesc::histogram("hycod_plain_seconds", "No labels.", &[]);
    static ODD_HELP: MetricDesc =
        MetricDesc::counter("odd_help_total", "A back\\slash\nand a newline.", &[]);
    static PATHS: MetricDesc = MetricDesc::counter("paths_total", "Paths.", &["path"]);

    fn parse(text: &str) -> Scrape {
        Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).unwrap()
    }

    fn find<'s>(scrape: &'s Scrape, metric: &str, labels: &[(&str, &str)]) -> &'s Sample {
        let wanted: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let matches: Vec<&Sample> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric && *s.labels == wanted)
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "{metric} {labels:?}: {:?}",
            scrape.samples
        );
        matches[0]
    }

    /// Undoes the label value escaping (the parser keeps escapes as they are).
    fn unescape(raw: &str) -> String {
        let mut out = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => panic!("dangling backslash in {raw:?}"),
            }
        }
        out
    }

    #[test]
    fn counters_and_gauges_parse_back_to_recorded_values() {
        let mut shard = Shard::new();
        let a = shard.counter(&ACCEPTED, &["sap-gateway"]).unwrap();
        let refused = shard
            .counter(&REJECTED, &["sap-gateway", "refused"])
            .unwrap();
        let online = shard.gauge(&ONLINE, &["sap-gateway"]).unwrap();
        let uptime = shard.gauge(&UPTIME, &[]).unwrap();
        shard.inc_by(a, 42);
        shard.inc_by(refused, u64::from(u32::MAX));
        shard.gauge_set(online, 1);
        shard.gauge_set(uptime, -7);
        let text = render(&shard.snapshot());
        let scrape = parse(&text);

        let sample = find(
            &scrape,
            "hycod_streams_accepted_total",
            &[("hybrid_connection", "sap-gateway")],
        );
        assert_eq!(sample.value, Value::Counter(42.0));
        let sample = find(
            &scrape,
            "hycod_streams_rejected_total",
            &[("hybrid_connection", "sap-gateway"), ("reason", "refused")],
        );
        assert_eq!(sample.value, Value::Counter(f64::from(u32::MAX)));
        let sample = find(
            &scrape,
            "hycod_listener_online",
            &[("hybrid_connection", "sap-gateway")],
        );
        assert_eq!(sample.value, Value::Gauge(1.0));
        let sample = find(&scrape, "hycod_uptime_units", &[]);
        assert_eq!(sample.value, Value::Gauge(-7.0));
        assert_eq!(scrape.docs["hycod_listener_online"], "Listener online.");
        assert_eq!(scrape.samples.len(), 4);
    }

    #[test]
    fn help_and_type_appear_once_per_family() {
        let mut shard = Shard::new();
        for hc in ["a", "b", "c"] {
            shard.counter(&ACCEPTED, &[hc]).unwrap();
            shard.histogram(&CONNECT, &[hc]).unwrap();
        }
        let text = render(&shard.snapshot());
        for family in [
            "hycod_streams_accepted_total",
            "hycod_target_connect_seconds",
        ] {
            let help = format!("# HELP {family} ");
            let kind = format!("# TYPE {family} ");
            assert_eq!(
                text.lines().filter(|l| l.starts_with(&help)).count(),
                1,
                "{text}"
            );
            assert_eq!(
                text.lines().filter(|l| l.starts_with(&kind)).count(),
                1,
                "{text}"
            );
        }
        assert!(text.contains("# TYPE hycod_target_connect_seconds histogram\n"));
        assert!(text.contains("# TYPE hycod_streams_accepted_total counter\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut shard = Shard::new();
        let tricky = "C:\\dir \"quoted\"\nnext line";
        let id = shard.counter(&PATHS, &[tricky]).unwrap();
        shard.inc(id);
        let text = render(&shard.snapshot());
        assert!(
            text.contains("paths_total{path=\"C:\\\\dir \\\"quoted\\\"\\nnext line\"} 1\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "one sample line: {text}");
        let scrape = parse(&text);
        assert_eq!(scrape.samples.len(), 1);
        let raw = scrape.samples[0].labels.get("path").unwrap();
        assert_eq!(unescape(raw), tricky);
    }

    #[test]
    fn help_text_is_escaped() {
        let mut shard = Shard::new();
        shard.counter(&ODD_HELP, &[]).unwrap();
        let text = render(&shard.snapshot());
        assert!(
            text.starts_with("# HELP odd_help_total A back\\\\slash\\nand a newline.\n"),
            "{text}"
        );
        assert_eq!(
            parse(&text).docs["odd_help_total"],
            "A back\\\\slash\\nand a newline."
        );
    }

    #[test]
    fn histograms_parse_back_cumulative_in_seconds() {
        let mut shard = Shard::new();
        let id = shard.histogram(&CONNECT, &["sap-gateway"]).unwrap();
        let recorded_micros = [
            50,
            100,
            180,
            900,
            1_000,
            4_000,
            70_000,
            70_000,
            900_000,
            2_000_000,
            45_000_000,
            90_000_000,
            u64::from(u32::MAX),
        ];
        for micros in recorded_micros {
            shard.observe(id, Duration::from_micros(micros));
        }
        let text = render(&shard.snapshot());
        let scrape = parse(&text);
        let labels = [("hybrid_connection", "sap-gateway")];

        let Value::Histogram(buckets) =
            &find(&scrape, "hycod_target_connect_seconds", &labels).value
        else {
            panic!("not a histogram: {text}");
        };
        let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
        let mut expected_bounds: Vec<f64> = BUCKET_LADDER_MICROS
            .iter()
            .map(|&us| Duration::from_micros(us).as_secs_f64())
            .collect();
        expected_bounds.push(f64::INFINITY);
        assert_eq!(bounds, expected_bounds);
        for bucket in buckets {
            let expected = recorded_micros
                .iter()
                .filter(|&&us| Duration::from_micros(us).as_secs_f64() <= bucket.less_than)
                .count();
            assert_eq!(bucket.count, expected as f64, "le={}", bucket.less_than);
        }
        assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));

        let count = find(&scrape, "hycod_target_connect_seconds_count", &labels);
        assert_eq!(count.value, Value::Untyped(recorded_micros.len() as f64));
        let inf = buckets.last().unwrap();
        assert_eq!(Value::Untyped(inf.count), count.value);

        let sum = find(&scrape, "hycod_target_connect_seconds_sum", &labels);
        let expected_sum: f64 = recorded_micros
            .iter()
            .map(|&us| Duration::from_micros(us).as_secs_f64())
            .sum();
        let Value::Untyped(sum) = sum.value else {
            panic!("sum is untyped in prometheus-parse");
        };
        assert!((sum - expected_sum).abs() < 1e-6, "{sum} vs {expected_sum}");
    }

    #[test]
    fn histogram_lines_have_the_documented_shape() {
        let mut shard = Shard::new();
        let id = shard.histogram(&PLAIN, &[]).unwrap();
        shard.observe_micros(id, 300);
        shard.observe_micros(id, 1_250_000);
        let text = render(&shard.snapshot());
        let expected_head = "# HELP hycod_plain_seconds No labels.\n\
             # TYPE hycod_plain_seconds histogram\n\
             hycod_plain_seconds_bucket{le=\"0.0001\"} 0\n\
             hycod_plain_seconds_bucket{le=\"0.00025\"} 0\n\
             hycod_plain_seconds_bucket{le=\"0.0005\"} 1\n";
        assert!(text.starts_with(expected_head), "{text}");
        let expected_tail = "hycod_plain_seconds_bucket{le=\"60\"} 2\n\
             hycod_plain_seconds_bucket{le=\"+Inf\"} 2\n\
             hycod_plain_seconds_sum 1.2503\n\
             hycod_plain_seconds_count 2\n";
        assert!(text.ends_with(expected_tail), "{text}");
        assert!(text.contains("hycod_plain_seconds_bucket{le=\"1\"} 1\n"));
        assert!(text.contains("hycod_plain_seconds_bucket{le=\"2.5\"} 2\n"));
    }

    #[test]
    fn labelled_histogram_puts_le_last() {
        let mut shard = Shard::new();
        shard.histogram(&CONNECT, &["x"]).unwrap();
        let text = render(&shard.snapshot());
        assert!(text.contains(
            "hycod_target_connect_seconds_bucket{hybrid_connection=\"x\",le=\"+Inf\"} 0\n"
        ));
        assert!(text.contains("hycod_target_connect_seconds_sum{hybrid_connection=\"x\"} 0\n"));
    }

    #[test]
    fn seconds_are_exact_decimals() {
        let cases = [
            (0, "0"),
            (1, "0.000001"),
            (100, "0.0001"),
            (250, "0.00025"),
            (2_500_000, "2.5"),
            (60_000_000, "60"),
            (u64::MAX, "18446744073709.551615"),
        ];
        for (micros, text) in cases {
            assert_eq!(Seconds(micros).to_string(), text);
        }
    }

    #[test]
    fn empty_snapshot_renders_nothing() {
        assert_eq!(render(&Snapshot::default()), "");
    }

    #[test]
    fn content_type_names_version_0_0_4() {
        assert!(CONTENT_TYPE.contains("version=0.0.4"));
    }
}
