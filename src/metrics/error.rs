//! Why registering a series or merging snapshots failed.

use std::fmt;

use super::desc::{MetricKind, HISTOGRAM_NAME_SUFFIX};

/// Why a shard refused to register a series. Registration happens at startup or reload, never
/// on the hot path, so every rule is checked there and recording itself cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidMetricName { metric: &'static str },
    /// A histogram's name does not end in `_seconds` (histograms are rendered in seconds).
    HistogramNameNotSeconds { metric: &'static str },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidLabelName {
        metric: &'static str,
        label: &'static str,
    },
    /// Label names starting with `__` are reserved for Prometheus' own use.
    ReservedLabelPrefix {
        metric: &'static str,
        label: &'static str,
    },
    /// `le` is the bucket bound label of a histogram and cannot be one of its own labels.
    LeLabelOnHistogram { metric: &'static str },
    /// The same label name appears twice in one descriptor.
    DuplicateLabelName {
        metric: &'static str,
        label: &'static str,
    },
    /// The descriptor was registered through the accessor of another kind
    /// (e.g. a gauge descriptor passed to `Shard::counter`).
    KindMismatch {
        metric: &'static str,
        declared: MetricKind,
        requested: MetricKind,
    },
    /// The number of label values differs from the number of label names.
    LabelArity {
        metric: &'static str,
        expected: usize,
        got: usize,
    },
    /// Another descriptor with the same name but a different help, kind or label names was
    /// registered on this shard earlier.
    ConflictingDescriptor { metric: &'static str },
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMetricName { metric } => write!(
                f,
                "metric {metric:?}: name must match [a-zA-Z_:][a-zA-Z0-9_:]*"
            ),
            Self::HistogramNameNotSeconds { metric } => write!(
                f,
                "metric {metric:?}: histogram names must end in {HISTOGRAM_NAME_SUFFIX:?}"
            ),
            Self::InvalidLabelName { metric, label } => write!(
                f,
                "metric {metric:?}: label name {label:?} must match [a-zA-Z_][a-zA-Z0-9_]*"
            ),
            Self::ReservedLabelPrefix { metric, label } => write!(
                f,
                "metric {metric:?}: label name {label:?} starts with the reserved prefix \"__\""
            ),
            Self::LeLabelOnHistogram { metric } => write!(
                f,
                "metric {metric:?}: label name \"le\" is reserved for histogram buckets"
            ),
            Self::DuplicateLabelName { metric, label } => {
                write!(f, "metric {metric:?}: label name {label:?} appears twice")
            }
            Self::KindMismatch {
                metric,
                declared,
                requested,
            } => write!(
                f,
                "metric {metric:?}: declared as a {declared}, registered as a {requested}"
            ),
            Self::LabelArity {
                metric,
                expected,
                got,
            } => write!(
                f,
                "metric {metric:?}: expected {expected} label values, got {got}"
            ),
            Self::ConflictingDescriptor { metric } => write!(
                f,
                "metric {metric:?}: another descriptor with this name but a different help, \
                 kind or label names is already registered"
            ),
        }
    }
}

impl std::error::Error for RegisterError {}

/// Why snapshots could not be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// Two snapshots carry different descriptors (help, kind or label names) under one name.
    ConflictingDescriptor { metric: &'static str },
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConflictingDescriptor { metric } => write!(
                f,
                "metric {metric:?}: snapshots disagree on its help, kind or label names"
            ),
        }
    }
}

impl std::error::Error for MergeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_metric_and_the_offending_part() {
        let err = RegisterError::LabelArity {
            metric: "m_total",
            expected: 2,
            got: 1,
        };
        assert_eq!(
            err.to_string(),
            "metric \"m_total\": expected 2 label values, got 1"
        );
        let err = RegisterError::KindMismatch {
            metric: "g",
            declared: MetricKind::Gauge,
            requested: MetricKind::Counter,
        };
        assert_eq!(
            err.to_string(),
            "metric \"g\": declared as a gauge, registered as a counter"
        );
        let err = RegisterError::InvalidLabelName {
            metric: "m",
            label: "a-b",
        };
        assert!(err.to_string().contains("\"a-b\""));
        let err = MergeError::ConflictingDescriptor { metric: "m" };
        assert!(err.to_string().starts_with("metric \"m\""));
    }
}
