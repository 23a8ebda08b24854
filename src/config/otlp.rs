//! `[otlp]`: OpenTelemetry profiles (docs/otlp.md §4).

use serde::Deserialize;

use super::ConfigError;

/// Which layout of the OTLP profiles messages the downstream reads (`otlp.schema`): the
/// layout changed incompatibly between opentelemetry-proto v1.9.0 and v1.10.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaChoice {
    V1_7,
    V1_9,
    /// What current Pyroscope (2.1, opentelemetry-proto v1.10.0) reads: the default.
    V1_10,
    /// No check: forward whatever arrives.
    Any,
}

impl SchemaChoice {
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        match t {
            "1.7" | "1.7.0" => Some(Self::V1_7),
            "1.9" | "1.9.0" => Some(Self::V1_9),
            "1.10" | "1.10.0" => Some(Self::V1_10),
            "any" => Some(Self::Any),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::V1_7 => "v1.7",
            Self::V1_9 => "v1.9",
            Self::V1_10 => "v1.10",
            Self::Any => "any",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSection {
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpConfig {
    pub schema: SchemaChoice,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            schema: SchemaChoice::V1_10,
        }
    }
}

/// Resolves `[otlp]`.
///
/// # Errors
/// An unknown schema name.
pub fn resolve(s: &OtlpSection) -> Result<OtlpConfig, ConfigError> {
    let schema = match &s.schema {
        None => SchemaChoice::V1_10,
        Some(v) => SchemaChoice::parse(v).ok_or_else(|| {
            ConfigError::new(
                "otlp.schema",
                format!("{v:?}: want \"v1.10\" (Pyroscope 2.1), \"v1.9\", \"v1.7\" or \"any\""),
            )
        })?,
    };
    Ok(OtlpConfig { schema })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        let r = |v: &str| {
            resolve(&OtlpSection {
                schema: Some(v.into()),
            })
        };
        assert_eq!(
            resolve(&OtlpSection::default()).unwrap().schema,
            SchemaChoice::V1_10
        );
        assert_eq!(r("v1.9").unwrap().schema, SchemaChoice::V1_9);
        assert_eq!(r("1.10.0").unwrap().schema, SchemaChoice::V1_10);
        assert_eq!(r("any").unwrap().schema, SchemaChoice::Any);
        assert_eq!(r("v1.8").unwrap_err().key, "otlp.schema");
    }
}
