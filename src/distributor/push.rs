//! A Push request through Pyroscope's `Push` and `PushBatch` (docs/distributor.md §3):
//! every `raw_profile` is decoded within the profile size limit and the decompressed total
//! within the body limit, then each profile goes through [`profile::check`]. The answer is
//! Pyroscope's: the message of the first failure, with its Connect code.

use crate::protocol::connect::Code;
use crate::protocol::proto::PushRequest;

use super::labels::Pair;
use super::profile::{self, DecodeFailure, Decoded, Outcome};
use super::reason::Reason;
use super::{Now, Policy, Rejection, Stage, gofmt};

/// What to forward of an accepted Push: one outcome per sample, per series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcomes: Vec<Vec<Outcome>>,
}

impl Verdict {
    /// Whether any profile is to be forwarded other than as received.
    pub fn changed(&self) -> bool {
        self.outcomes
            .iter()
            .flatten()
            .any(|o| *o != Outcome::Unchanged)
    }

    /// Whether nothing is left to forward.
    pub fn all_empty(&self) -> bool {
        self.outcomes.iter().flatten().all(|o| *o == Outcome::Empty)
    }

    /// `req` with the rewritten profiles in place and the empty ones (and series left
    /// without profiles) removed.
    pub fn apply(self, mut req: PushRequest) -> PushRequest {
        for (series, outcomes) in req.series.iter_mut().zip(self.outcomes) {
            let mut kept = Vec::with_capacity(series.samples.len());
            for (mut sample, outcome) in series.samples.drain(..).zip(outcomes) {
                match outcome {
                    Outcome::Unchanged => kept.push(sample),
                    Outcome::Replaced(b) => {
                        sample.raw_profile = b;
                        kept.push(sample);
                    }
                    Outcome::Empty => {}
                }
            }
            series.samples = kept;
        }
        req.series.retain(|s| !s.samples.is_empty());
        req
    }
}

/// Checks a decoded Push of `tenant`.
///
/// # Errors
/// Pyroscope's answer to the request, as a Connect code and message.
pub fn check(
    stage: &Stage,
    policy: &Policy,
    tenant: &str,
    req: &PushRequest,
    now: Now,
) -> Result<Verdict, Rejection> {
    let limits = policy.limits.of(tenant);
    let body_limit = limits.body_limit();
    let mut decoded: Vec<Vec<Option<Decoded>>> = Vec::with_capacity(req.series.len());
    let mut decode_error: Option<Rejection> = None;
    let (mut used, mut count) = (0u64, 0u64);
    for series in &req.series {
        let mut row = Vec::with_capacity(series.samples.len());
        for sample in &series.samples {
            match profile::decode(&sample.raw_profile, limits, policy.hard_max_decoded) {
                Ok(d) => {
                    used += d.profile.buf.len() as u64;
                    count += 1;
                    if let Some(max) = body_limit
                        && used > max
                    {
                        stage.discarded(tenant, Reason::BodySizeLimitExceeded, count, used);
                        return Err(Rejection::new(
                            Code::InvalidArgument,
                            format!(
                                "uncompressed batched profile payload size exceeds limit of {}",
                                gofmt::si_bytes(max)
                            ),
                        ));
                    }
                    row.push(Some(d));
                }
                Err(failure) => {
                    // Pyroscope counts the limit, not the actual size.
                    if let DecodeFailure::TooLarge { limit } = failure {
                        stage.discarded(tenant, Reason::ProfileSizeLimit, 1, limit);
                    }
                    let code = match failure {
                        DecodeFailure::TooLarge { .. } => Code::InvalidArgument,
                        DecodeFailure::Invalid(_) => Code::Unknown,
                    };
                    decode_error.get_or_insert_with(|| {
                        Rejection::new(code, profile::decode_failure_message(&failure))
                    });
                    row.push(None);
                }
            }
        }
        decoded.push(row);
    }
    if count == 0 {
        return Err(decode_error
            .unwrap_or_else(|| Rejection::new(Code::InvalidArgument, "no profiles received")));
    }
    let mut outcomes = Vec::with_capacity(req.series.len());
    for (series, row) in req.series.iter().zip(decoded) {
        let labels: Vec<Pair> = series
            .labels
            .iter()
            .map(|l| (l.name.as_bytes().to_vec(), l.value.as_bytes().to_vec()))
            .collect();
        let mut out = Vec::with_capacity(row.len());
        for d in row {
            match d {
                Some(d) => out.push(profile::check(
                    stage,
                    policy,
                    tenant,
                    labels.clone(),
                    d,
                    now,
                )?),
                None => out.push(Outcome::Unchanged),
            }
        }
        outcomes.push(out);
    }
    match decode_error {
        Some(e) => Err(e),
        None => Ok(Verdict { outcomes }),
    }
}
