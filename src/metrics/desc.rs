//! Static metric descriptors and the naming rules of the Prometheus data model.
//!
//! Every metric family is declared once as a `static MetricDesc`; a shard registers series of it
//! (one per tuple of label values) and the descriptor travels by `&'static` reference into
//! snapshots and rendering. The rules follow the Prometheus data model
//! (<https://prometheus.io/docs/concepts/data_model/>): metric names match
//! `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names match `[a-zA-Z_][a-zA-Z0-9_]*` and names starting
//! with `__` are reserved. Histograms additionally reserve the `le` label for their buckets.

use std::fmt;

use super::error::RegisterError;

/// What a metric family measures, and so how it is stored, merged and rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonically increasing `u64` (rendered `# TYPE counter`).
    Counter,
    /// An `i64` that goes up and down (rendered `# TYPE gauge`).
    Gauge,
    /// A latency distribution recorded in microseconds and rendered in seconds
    /// (rendered `# TYPE histogram`).
    Histogram,
}

impl MetricKind {
    /// The word used on the `# TYPE` line of the text exposition format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The suffix every histogram name must carry: histograms record durations, rendered in seconds.
pub const HISTOGRAM_NAME_SUFFIX: &str = "_seconds";

/// One metric family: name, help text, kind and the names of its labels.
///
/// Declare it as a `static` so shards, snapshots and rendering can all hold `&'static` to it:
///
/// ```
/// use hycod::metrics::MetricDesc;
/// static STREAMS_ACCEPTED: MetricDesc = MetricDesc::counter(
///     "hycod_streams_accepted_total",
///     "Rendezvous streams accepted, by hybrid connection.",
///     &["hybrid_connection"],
/// );
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct MetricDesc {
    /// The family name, e.g. `hycod_streams_accepted_total`.
    pub name: &'static str,
    /// One line of help text for the `# HELP` line.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The label names, in the order label values are given at registration.
    pub label_names: &'static [&'static str],
}

impl MetricDesc {
    /// A counter family.
    pub const fn counter(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Counter,
            label_names,
        }
    }

    /// A gauge family.
    pub const fn gauge(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Gauge,
            label_names,
        }
    }

    /// A latency histogram family; its name must end in [`HISTOGRAM_NAME_SUFFIX`].
    pub const fn histogram(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Histogram,
            label_names,
        }
    }

    /// Checks the name and label names against the Prometheus data model rules.
    pub fn validate(&self) -> Result<(), RegisterError> {
        let metric = self.name;
        if !is_valid_metric_name(metric) {
            return Err(RegisterError::InvalidMetricName { metric });
        }
        if self.kind == MetricKind::Histogram && !metric.ends_with(HISTOGRAM_NAME_SUFFIX) {
            return Err(RegisterError::HistogramNameNotSeconds { metric });
        }
        for (position, &label) in self.label_names.iter().enumerate() {
            if !is_valid_label_name(label) {
                return Err(RegisterError::InvalidLabelName { metric, label });
            }
            if label.starts_with("__") {
                return Err(RegisterError::ReservedLabelPrefix { metric, label });
            }
            if self.kind == MetricKind::Histogram && label == "le" {
                return Err(RegisterError::LeLabelOnHistogram { metric });
            }
            if self.label_names[..position].contains(&label) {
                return Err(RegisterError::DuplicateLabelName { metric, label });
            }
        }
        Ok(())
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(desc: MetricDesc) -> Result<(), RegisterError> {
        desc.validate()
    }

    #[test]
    fn accepts_well_formed_descriptors() {
        assert_eq!(
            validate(MetricDesc::counter("a:b_c1", "h", &["x", "_y2"])),
            Ok(())
        );
        assert_eq!(validate(MetricDesc::gauge("_g", "h", &[])), Ok(()));
        assert_eq!(
            validate(MetricDesc::histogram("lat_seconds", "h", &["hc"])),
            Ok(())
        );
    }

    #[test]
    fn rejects_invalid_metric_names() {
        for name in ["", "1abc", "a-b", "a b", "é"] {
            assert_eq!(
                validate(MetricDesc::counter(name, "h", &[])),
                Err(RegisterError::InvalidMetricName { metric: name }),
                "{name:?}"
            );
        }
    }

    #[test]
    fn rejects_invalid_label_names() {
        for label in ["", "1a", "a:b", "a-b"] {
            let labels: &'static [&'static str] = Box::leak(Box::new([label]));
            assert_eq!(
                validate(MetricDesc::counter("m", "h", labels)),
                Err(RegisterError::InvalidLabelName { metric: "m", label }),
                "{label:?}"
            );
        }
    }

    #[test]
    fn rejects_double_underscore_labels() {
        assert_eq!(
            validate(MetricDesc::gauge("m", "h", &["__name__"])),
            Err(RegisterError::ReservedLabelPrefix {
                metric: "m",
                label: "__name__"
            })
        );
    }

    #[test]
    fn rejects_le_on_histograms_only() {
        assert_eq!(
            validate(MetricDesc::histogram("m_seconds", "h", &["le"])),
            Err(RegisterError::LeLabelOnHistogram {
                metric: "m_seconds"
            })
        );
        assert_eq!(validate(MetricDesc::counter("m", "h", &["le"])), Ok(()));
    }

    #[test]
    fn rejects_duplicate_label_names() {
        assert_eq!(
            validate(MetricDesc::counter("m", "h", &["a", "b", "a"])),
            Err(RegisterError::DuplicateLabelName {
                metric: "m",
                label: "a"
            })
        );
    }

    #[test]
    fn rejects_histograms_not_in_seconds() {
        assert_eq!(
            validate(MetricDesc::histogram("latency_ms", "h", &[])),
            Err(RegisterError::HistogramNameNotSeconds {
                metric: "latency_ms"
            })
        );
    }

    #[test]
    fn kind_words_match_the_exposition_format() {
        assert_eq!(MetricKind::Counter.as_str(), "counter");
        assert_eq!(MetricKind::Gauge.as_str(), "gauge");
        assert_eq!(MetricKind::Histogram.to_string(), "histogram");
    }
}
