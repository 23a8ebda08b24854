//! `[distributor]` and `[limits]`: the edge distributor's switches and Pyroscope's
//! per-tenant limits, under Pyroscope's own names and defaults (`docs/distributor.md` §2), so
//! an operator can paste the limits of the Pyroscope behind the gateway. `[limits]` holds the
//! defaults of every tenant; `[limits.overrides."<tenant>"]` replaces some of them for one
//! tenant.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::units::Dur;

/// `[distributor]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistributorConfig {
    /// Check every profile and its labels as Pyroscope's distributor does, and answer as it
    /// does (off: Alloy's pass-through behaviour).
    pub validate: bool,
    /// Forward the normalised profile (timestamps set, zero samples dropped, duplicate
    /// stacks merged) instead of the one received.
    pub normalize: bool,
    /// `X-Scope-OrgID` is required (401 without it); off: every request belongs to tenant
    /// `anonymous`, as in Pyroscope.
    pub multitenancy_enabled: bool,
}

impl DistributorConfig {
    /// Whether the stage has anything to do (decoding profiles costs CPU; off by default).
    pub fn enabled(&self) -> bool {
        self.validate || self.normalize || self.multitenancy_enabled
    }
}

/// Pyroscope's defaults (`pkg/validation/limits.go`).
pub mod defaults {
    use std::time::Duration;

    pub const INGESTION_RATE_MB: f64 = 4.0;
    pub const INGESTION_BURST_SIZE_MB: f64 = 2.0;
    pub const INGESTION_BODY_LIMIT_MB: f64 = 256.0;
    pub const MAX_LABEL_NAME_LENGTH: usize = 1024;
    pub const MAX_LABEL_VALUE_LENGTH: usize = 2048;
    pub const MAX_LABEL_NAMES_PER_SERIES: usize = 30;
    pub const MAX_PROFILE_SIZE_BYTES: u64 = 4 << 20;
    pub const MAX_PROFILE_STACKTRACE_SAMPLES: usize = 16_000;
    pub const MAX_PROFILE_STACKTRACE_SAMPLE_LABELS: usize = 100;
    pub const MAX_PROFILE_STACKTRACE_DEPTH: usize = 1000;
    pub const MAX_PROFILE_SYMBOL_VALUE_LENGTH: usize = 65_535;
    pub const REJECT_OLDER_THAN: Duration = Duration::from_secs(3600);
    pub const REJECT_NEWER_THAN: Duration = Duration::from_secs(600);
    pub const DISABLE_LABEL_SANITIZATION: bool = true;
    pub const MAX_SESSIONS_PER_SERIES: u64 = 0;
}

/// The limits of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Token bucket refill, MiB/s of uncompressed bytes (labels + decoded profile); 0 = off.
    pub ingestion_rate_mb: f64,
    /// Bucket size, MiB.
    pub ingestion_burst_size_mb: f64,
    /// Largest compressed body, and largest total decompressed size of one Push; 0 = off.
    pub ingestion_body_limit_mb: f64,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub max_label_names_per_series: usize,
    /// Largest decoded profile; 0 = off.
    pub max_profile_size_bytes: u64,
    /// 0 = off.
    pub max_profile_stacktrace_samples: usize,
    /// 0 = off.
    pub max_profile_stacktrace_sample_labels: usize,
    /// Deeper stacks are truncated (root side kept); 0 = off.
    pub max_profile_stacktrace_depth: usize,
    /// Longer strings are truncated to their last bytes; 0 = off.
    pub max_profile_symbol_value_length: usize,
    /// Profiles older than this are refused; 0 = off.
    pub reject_older_than: Duration,
    /// Profiles further in the future than this are refused; 0 = off.
    pub reject_newer_than: Duration,
    pub disable_label_sanitization: bool,
    /// 0: the `__session_id__` label is removed; N: its value becomes (id mod N).
    pub max_sessions_per_series: u64,
}

impl Default for Limits {
    fn default() -> Self {
        use defaults::*;
        Self {
            ingestion_rate_mb: INGESTION_RATE_MB,
            ingestion_burst_size_mb: INGESTION_BURST_SIZE_MB,
            ingestion_body_limit_mb: INGESTION_BODY_LIMIT_MB,
            max_label_name_length: MAX_LABEL_NAME_LENGTH,
            max_label_value_length: MAX_LABEL_VALUE_LENGTH,
            max_label_names_per_series: MAX_LABEL_NAMES_PER_SERIES,
            max_profile_size_bytes: MAX_PROFILE_SIZE_BYTES,
            max_profile_stacktrace_samples: MAX_PROFILE_STACKTRACE_SAMPLES,
            max_profile_stacktrace_sample_labels: MAX_PROFILE_STACKTRACE_SAMPLE_LABELS,
            max_profile_stacktrace_depth: MAX_PROFILE_STACKTRACE_DEPTH,
            max_profile_symbol_value_length: MAX_PROFILE_SYMBOL_VALUE_LENGTH,
            reject_older_than: REJECT_OLDER_THAN,
            reject_newer_than: REJECT_NEWER_THAN,
            disable_label_sanitization: DISABLE_LABEL_SANITIZATION,
            max_sessions_per_series: MAX_SESSIONS_PER_SERIES,
        }
    }
}

impl Limits {
    /// Rate in bytes per second.
    pub fn rate_bytes(&self) -> f64 {
        self.ingestion_rate_mb * MIB
    }

    pub fn burst_bytes(&self) -> f64 {
        self.ingestion_burst_size_mb * MIB
    }

    /// The body limit in bytes (`None` when off).
    pub fn body_limit(&self) -> Option<u64> {
        (self.ingestion_body_limit_mb > 0.0).then_some((self.ingestion_body_limit_mb * MIB) as u64)
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The default limits and the per-tenant overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsConfig {
    pub defaults: Limits,
    pub overrides: BTreeMap<String, Limits>,
}

impl LimitsConfig {
    /// The limits of `tenant`.
    pub fn of(&self, tenant: &str) -> &Limits {
        self.overrides.get(tenant).unwrap_or(&self.defaults)
    }
}

/// `[distributor]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributorSection {
    pub validate: Option<bool>,
    pub normalize: Option<bool>,
    pub multitenancy_enabled: Option<bool>,
}

/// `[limits]` (and each override) as written; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub ingestion_rate_mb: Option<f64>,
    pub ingestion_burst_size_mb: Option<f64>,
    pub ingestion_body_limit_mb: Option<f64>,
    pub max_label_name_length: Option<usize>,
    pub max_label_value_length: Option<usize>,
    pub max_label_names_per_series: Option<usize>,
    pub max_profile_size_bytes: Option<u64>,
    pub max_profile_stacktrace_samples: Option<usize>,
    pub max_profile_stacktrace_sample_labels: Option<usize>,
    pub max_profile_stacktrace_depth: Option<usize>,
    pub max_profile_symbol_value_length: Option<usize>,
    pub reject_older_than: Option<Dur>,
    pub reject_newer_than: Option<Dur>,
    pub disable_label_sanitization: Option<bool>,
    pub max_sessions_per_series: Option<u64>,
    /// Only in `[limits]`: per-tenant sections.
    #[serde(default)]
    pub overrides: BTreeMap<String, LimitsSection>,
}

impl LimitsSection {
    /// `base` with the keys this section sets replaced.
    fn apply(&self, base: &Limits) -> Limits {
        let mut l = base.clone();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { l.$f = v; } )* };
        }
        set!(
            ingestion_rate_mb,
            ingestion_burst_size_mb,
            ingestion_body_limit_mb,
            max_label_name_length,
            max_label_value_length,
            max_label_names_per_series,
            max_profile_size_bytes,
            max_profile_stacktrace_samples,
            max_profile_stacktrace_sample_labels,
            max_profile_stacktrace_depth,
            max_profile_symbol_value_length,
            disable_label_sanitization,
            max_sessions_per_series
        );
        if let Some(d) = self.reject_older_than {
            l.reject_older_than = d.0;
        }
        if let Some(d) = self.reject_newer_than {
            l.reject_newer_than = d.0;
        }
        l
    }
}

/// Longest tenant ID (dskit's limit); an override for a longer one could never match.
const MAX_TENANT_LEN: usize = 150;

pub(super) fn resolve(
    d: &DistributorSection,
    l: &LimitsSection,
) -> Result<(DistributorConfig, LimitsConfig), ConfigError> {
    let distributor = DistributorConfig {
        validate: d.validate.unwrap_or(false),
        normalize: d.normalize.unwrap_or(false),
        multitenancy_enabled: d.multitenancy_enabled.unwrap_or(false),
    };
    let defaults = l.apply(&Limits::default());
    check(&defaults, "limits")?;
    let mut overrides = BTreeMap::new();
    for (tenant, o) in &l.overrides {
        let key = format!("limits.overrides.{tenant:?}");
        if !o.overrides.is_empty() {
            return Err(ConfigError::new(key, "overrides cannot be nested"));
        }
        if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN {
            return Err(ConfigError::new(
                key,
                format!("a tenant ID has 1 to {MAX_TENANT_LEN} characters"),
            ));
        }
        let limits = o.apply(&defaults);
        check(&limits, &key)?;
        overrides.insert(tenant.clone(), limits);
    }
    Ok((
        distributor,
        LimitsConfig {
            defaults,
            overrides,
        },
    ))
}

fn check(l: &Limits, key: &str) -> Result<(), ConfigError> {
    for (name, v) in [
        ("ingestion_rate_mb", l.ingestion_rate_mb),
        ("ingestion_burst_size_mb", l.ingestion_burst_size_mb),
        ("ingestion_body_limit_mb", l.ingestion_body_limit_mb),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(ConfigError::new(
                format!("{key}.{name}"),
                "must be a finite number >= 0",
            ));
        }
    }
    if l.ingestion_rate_mb > 0.0 && l.ingestion_burst_size_mb <= 0.0 {
        return Err(ConfigError::new(
            format!("{key}.ingestion_burst_size_mb"),
            "must be greater than 0 when ingestion_rate_mb is set (no profile would fit)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(DistributorConfig, LimitsConfig), ConfigError> {
        #[derive(Deserialize)]
        struct F {
            #[serde(default)]
            distributor: DistributorSection,
            #[serde(default)]
            limits: LimitsSection,
        }
        let f: F = toml::from_str(text).map_err(|e| ConfigError::new("toml", e.to_string()))?;
        resolve(&f.distributor, &f.limits)
    }

    #[test]
    fn defaults_are_pyroscope_s() {
        let (d, l) = parse("").expect("empty");
        assert!(!d.enabled());
        let x = &l.defaults;
        assert_eq!(x.ingestion_rate_mb, 4.0);
        assert_eq!(x.ingestion_burst_size_mb, 2.0);
        assert_eq!(x.max_label_names_per_series, 30);
        assert_eq!(x.max_profile_size_bytes, 4_194_304);
        assert_eq!(x.max_profile_stacktrace_samples, 16_000);
        assert_eq!(x.reject_older_than, Duration::from_secs(3600));
        assert_eq!(x.reject_newer_than, Duration::from_secs(600));
        assert!(x.disable_label_sanitization);
        assert_eq!(x.body_limit(), Some(256 << 20));
    }

    #[test]
    fn overrides_layer_over_the_defaults() {
        let (d, l) = parse(
            "[distributor]\nvalidate = true\n[limits]\ningestion_rate_mb = 8\nmax_label_names_per_series = 10\n\
             [limits.overrides.\"tenant-a\"]\ningestion_rate_mb = 20\nreject_older_than = \"2h\"\n",
        )
        .expect("valid");
        assert!(d.validate && d.enabled());
        assert_eq!(l.of("other").ingestion_rate_mb, 8.0);
        let a = l.of("tenant-a");
        assert_eq!(a.ingestion_rate_mb, 20.0);
        assert_eq!(a.max_label_names_per_series, 10, "inherited from [limits]");
        assert_eq!(a.reject_older_than, Duration::from_secs(7200));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("[limits]\ningestion_rate_mb = -1\n").expect_err("negative");
        assert_eq!(e.key, "limits.ingestion_rate_mb");
        let e =
            parse("[limits.overrides.\"t\"]\ningestion_burst_size_mb = 0\n").expect_err("burst");
        assert_eq!(e.key, "limits.overrides.\"t\".ingestion_burst_size_mb");
        assert!(
            parse("[limits]\nmax_label_nmes = 1\n").is_err(),
            "unknown key"
        );
    }
}
