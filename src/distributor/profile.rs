//! One profile through Pyroscope's `pushSeries` (docs/distributor.md §3): the
//! `service_name` default, the rate limit, `ValidateProfile`, normalisation, then the
//! label sets of the series it splits into. The result says what to forward.

use bytes::Bytes;

use crate::config::distributor::Limits;
use crate::protocol::connect::Code;
use crate::protocol::gzip;
use crate::protocol::pprof::{self, DecodeError, Profile};

use super::labels::{self, Pair};
use super::normalize::normalize;
use super::reason::{Invalid, Reason};
use super::validate::validate_profile;
use super::{Now, Policy, Rejection, Stage, gofmt, series};

/// Most strings and samples the decoder accepts whatever the limits say: far above what a
/// profile within the size limit can hold, so they bind only on hostile input.
const DECODE_CAP: usize = 1 << 20;

/// A decoded profile and how it arrived.
#[derive(Debug)]
pub struct Decoded {
    pub profile: Profile,
    /// It arrived gzip'd (a rewritten one is sent gzip'd too).
    pub gzip: bool,
}

/// Why a profile did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeFailure {
    /// Larger than the limit once decompressed.
    TooLarge {
        limit: u64,
    },
    Invalid(DecodeError),
}

/// What to forward for one accepted profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes as received.
    Unchanged,
    /// These bytes instead (gzip'd when the original was).
    Replaced(Bytes),
    /// Nothing: no sample survived normalisation (Pyroscope accepts and stores nothing).
    Empty,
}

/// Decodes `raw` within the tenant's `max_profile_size_bytes` (or `hard_max` when that is
/// off: memory stays bounded either way).
pub fn decode(raw: &Bytes, limits: &Limits, hard_max: usize) -> Result<Decoded, DecodeFailure> {
    let max_size = match limits.max_profile_size_bytes {
        0 => hard_max,
        n => usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(hard_max.max(1)),
    };
    let caps = pprof::Limits {
        max_size,
        max_strings: DECODE_CAP,
        max_samples: DECODE_CAP.max(limits.max_profile_stacktrace_samples.saturating_add(1)),
    };
    match pprof::decode_bytes(raw, caps) {
        Ok(profile) => Ok(Decoded {
            profile,
            gzip: gzip::is_gzip(raw),
        }),
        Err(DecodeError::TooLarge { .. }) => Err(DecodeFailure::TooLarge {
            limit: max_size as u64,
        }),
        Err(e) => Err(DecodeFailure::Invalid(e)),
    }
}

/// Runs `pushSeries` on one decoded profile of `tenant` with the series labels `labels`.
pub fn check(
    stage: &Stage,
    policy: &Policy,
    tenant: &str,
    mut labels: Vec<Pair>,
    decoded: Decoded,
    now: Now,
) -> Result<Outcome, Rejection> {
    let limits = policy.limits.of(tenant);
    let Decoded { mut profile, gzip } = decoded;
    labels::ensure_service_name(&mut labels);
    let size = pprof::encoded_len(&profile);
    let total = (labels::size(&labels) + size) as u64;
    if policy.config.validate {
        rate_limit(stage, limits, tenant, total, now)?;
    }
    let mut repaired = false;
    if policy.config.validate {
        match validate_profile(limits, &mut profile, &labels, size, now.millis) {
            Ok(r) => repaired = r.any(),
            Err(invalid) => {
                return Err(stage.reject(tenant, invalid, total, Code::InvalidArgument, None));
            }
        }
    }
    let mut changed = repaired;
    if policy.config.normalize {
        changed |= normalize(&mut profile, now.millis.saturating_mul(1_000_000)).changed;
        if profile.samples.is_empty() {
            return Ok(Outcome::Empty);
        }
    }
    if policy.config.validate
        && let Err(invalid) = series::validate(limits, &labels, &profile)
    {
        return Err(stage.reject(tenant, invalid, total, Code::InvalidArgument, None));
    }
    if !(policy.config.normalize && changed) {
        return Ok(Outcome::Unchanged);
    }
    stage.shared.metrics.normalized();
    let plain = pprof::encode(&profile);
    Ok(Outcome::Replaced(Bytes::from(if gzip {
        gzip::compress(&plain)
    } else {
        plain
    })))
}

/// The checks of a profile whose body is not parsed (JFR, speedscope, the text formats):
/// the rate limit, charged the labels and the body size, and the series labels.
pub fn check_labels(
    stage: &Stage,
    policy: &Policy,
    tenant: &str,
    mut labels: Vec<Pair>,
    body_bytes: u64,
    now: Now,
) -> Result<(), Rejection> {
    if !policy.config.validate {
        return Ok(());
    }
    let limits = policy.limits.of(tenant);
    labels::ensure_service_name(&mut labels);
    let total = labels::size(&labels) as u64 + body_bytes;
    rate_limit(stage, limits, tenant, total, now)?;
    series::validate(limits, &labels, &Profile::default())
        .map_err(|invalid| stage.reject(tenant, invalid, total, Code::InvalidArgument, None))
}

/// Takes `total` bytes from the tenant's bucket, or answers as Pyroscope does.
fn rate_limit(
    stage: &Stage,
    limits: &Limits,
    tenant: &str,
    total: u64,
    now: Now,
) -> Result<(), Rejection> {
    let rate = limits.rate_bytes();
    stage
        .allow(tenant, total, rate, limits.burst_bytes(), now.instant)
        .map_err(|limited| {
            let message = format!(
                "push rate limit ({}) exceeded while adding {}",
                gofmt::iec_bytes(rate as u64),
                gofmt::iec_bytes(total)
            );
            stage.reject(
                tenant,
                Invalid::new(Reason::RateLimited, message),
                total,
                Code::ResourceExhausted,
                limited.retry_after_secs,
            )
        })
}

/// The message of a decode failure, as Pyroscope words the size case.
pub fn decode_failure_message(f: &DecodeFailure) -> String {
    match f {
        DecodeFailure::TooLarge { limit } => format!(
            "uncompressed profile payload size exceeds limit of {}",
            gofmt::si_bytes(*limit)
        ),
        DecodeFailure::Invalid(e) => e.to_string(),
    }
}
