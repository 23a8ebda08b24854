//! Why the distributor refused a profile: Pyroscope's `reason` label values of
//! `pyroscope_discarded_samples_total` and `pyroscope_discarded_bytes_total`, and the error
//! that carries a reason with Pyroscope's exact message.

/// A `reason` label value (Pyroscope's `validation.Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    MissingLabels,
    MaxLabelNamesPerSeries,
    InvalidLabels,
    LabelNameTooLong,
    LabelValueTooLong,
    DuplicateLabelNames,
    NotInIngestionWindow,
    ProfileSizeLimit,
    SamplesLimit,
    SampleLabelsLimit,
    MalformedProfile,
    RateLimited,
    BodySizeLimitExceeded,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::MissingLabels,
        Reason::MaxLabelNamesPerSeries,
        Reason::InvalidLabels,
        Reason::LabelNameTooLong,
        Reason::LabelValueTooLong,
        Reason::DuplicateLabelNames,
        Reason::NotInIngestionWindow,
        Reason::ProfileSizeLimit,
        Reason::SamplesLimit,
        Reason::SampleLabelsLimit,
        Reason::MalformedProfile,
        Reason::RateLimited,
        Reason::BodySizeLimitExceeded,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::MissingLabels => "missing_labels",
            Reason::MaxLabelNamesPerSeries => "max_label_names_per_series",
            Reason::InvalidLabels => "invalid_labels",
            Reason::LabelNameTooLong => "label_name_too_long",
            Reason::LabelValueTooLong => "label_value_too_long",
            Reason::DuplicateLabelNames => "duplicate_label_names",
            Reason::NotInIngestionWindow => "not_in_ingestion_window",
            Reason::ProfileSizeLimit => "profile_size_limit",
            Reason::SamplesLimit => "samples_limit",
            Reason::SampleLabelsLimit => "sample_labels_limit",
            Reason::MalformedProfile => "malformed_profile",
            Reason::RateLimited => "rate_limited",
            Reason::BodySizeLimitExceeded => "body_size_limit_exceeded",
        }
    }
}

/// A failed check: its reason and Pyroscope's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub reason: Reason,
    pub message: String,
}

impl Invalid {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}
