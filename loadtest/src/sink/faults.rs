//! Fault injection: latency, error statuses at a rate, hangs at a rate (from the command
//! line), and scripted faults set at run time through `POST /control`.
//!
//! Scripted faults (`fail_next`, `hang_next`) come first and are consumed in request order
//! across all workers; then the rates apply. Latency applies to every answer on the profile
//! routes, including injected errors.

use std::time::Duration;

use pyrogate::protocol::connect::Code;
use pyrogate::protocol::query;
use serde::Serialize;

/// Largest `fail_next` / `hang_next` count.
const MAX_SCRIPTED: u64 = 1_000_000_000;

/// The error an injected failure answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedError {
    pub status: u16,
    /// Connect code in the JSON body; `None` = derived from the status.
    pub code: Option<Code>,
    /// `Retry-After` header value (seconds).
    pub retry_after: Option<u32>,
    pub message: String,
}

impl InjectedError {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            code: None,
            retry_after: None,
            message: "injected fault".into(),
        }
    }
}

/// Command-line fault settings (what `reset=1` returns to).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub latency: Duration,
    pub error_rate: f64,
    pub error: InjectedError,
    pub hang_rate: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            error_rate: 0.0,
            error: InjectedError::new(503),
            hang_rate: 0.0,
        }
    }
}

impl FaultConfig {
    /// Validates at construction: rates in `[0, 1]`, an error status a client can read,
    /// latency below the hang time (a longer delay would be cut by the connection loop).
    pub fn validate(&self, max_latency: Duration) -> Result<(), String> {
        check_rate("error-rate", self.error_rate)?;
        check_rate("hang-rate", self.hang_rate)?;
        check_status(self.error.status)?;
        if self.latency >= max_latency {
            return Err(format!(
                "latency {:?} must be below the hang time {max_latency:?}",
                self.latency
            ));
        }
        Ok(())
    }
}

fn check_rate(name: &str, r: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&r) {
        Ok(())
    } else {
        Err(format!("{name} must be within 0..=1, got {r}"))
    }
}

fn check_status(s: u16) -> Result<(), String> {
    if (200..=599).contains(&s) {
        Ok(())
    } else {
        Err(format!("error status must be within 200..=599, got {s}"))
    }
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Pass,
    Fail(InjectedError),
    Hang,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    base: FaultConfig,
    current: FaultConfig,
    fail_next: u64,
    fail_error: InjectedError,
    hang_next: u64,
    max_latency: Duration,
    /// OTLP: profiles each accepted request reports as refused in its `partial_success`
    /// (`otlp_partial=N`), 0 = a plain success.
    otlp_partial: i64,
}

#[derive(Serialize)]
struct State<'a> {
    latency_ms: u64,
    error_rate: f64,
    error_status: u16,
    error_code: &'a str,
    hang_rate: f64,
    fail_next: u64,
    fail_status: u16,
    hang_next: u64,
}

fn code_for(e: &InjectedError, route_code: fn(u16) -> Code) -> Code {
    e.code.unwrap_or_else(|| route_code(e.status))
}

impl Faults {
    pub fn new(base: FaultConfig, max_latency: Duration) -> Self {
        Self {
            current: base.clone(),
            fail_error: base.error.clone(),
            base,
            fail_next: 0,
            hang_next: 0,
            max_latency,
            otlp_partial: 0,
        }
    }

    /// Decides for one request; `roll_hang`/`roll_error` are uniform in `[0, 1)`.
    pub fn decide(&mut self, roll_hang: f64, roll_error: f64) -> (Decision, Duration) {
        let d = if self.hang_next > 0 {
            self.hang_next -= 1;
            Decision::Hang
        } else if self.fail_next > 0 {
            self.fail_next -= 1;
            Decision::Fail(self.fail_error.clone())
        } else if roll_hang < self.current.hang_rate {
            Decision::Hang
        } else if roll_error < self.current.error_rate {
            Decision::Fail(self.current.error.clone())
        } else {
            Decision::Pass
        };
        (d, self.current.latency)
    }

    /// Applies a `/control` query: `reset=1` first, then every other parameter. Unknown
    /// parameters and bad values fail the whole call and change nothing.
    ///
    /// Parameters: `reset=1`; `fail_next=N` with the error given by `status` (default 503),
    /// `connect_code`, `retry_after` (seconds), `message`; `hang_next=N`; `latency_ms=N` or
    /// `latency=<duration>`; `error_rate=F` with `error_status=C` (or `status`), plus the same
    /// `connect_code`/`retry_after`/`message`; `hang_rate=F`.
    /// What an accepted OTLP request reports as refused (`otlp_partial`).
    pub fn otlp_partial(&self) -> i64 {
        self.otlp_partial
    }

    pub fn control(&mut self, raw_query: &str) -> Result<(), String> {
        let q = query::parse(raw_query);
        let mut next = self.clone();
        if q.get("reset").is_some_and(|v| v == "1" || v == "true") {
            next = Faults::new(self.base.clone(), self.max_latency);
        }
        let mut error = InjectedError::new(503);
        let mut error_given = false;
        for (k, v) in q.iter() {
            match k {
                "reset" => {}
                "status" | "error_status" => {
                    error.status = v.parse().map_err(|_| format!("{k}: not a status: {v:?}"))?;
                    check_status(error.status)?;
                    error_given = true;
                }
                "connect_code" => {
                    error.code = Some(
                        Code::from_name(v)
                            .ok_or_else(|| format!("connect_code: unknown code {v:?}"))?,
                    );
                    error_given = true;
                }
                "retry_after" => {
                    error.retry_after = Some(
                        v.parse()
                            .map_err(|_| format!("retry_after: not seconds: {v:?}"))?,
                    );
                    error_given = true;
                }
                "message" => {
                    error.message = v.chars().take(1024).collect();
                    error_given = true;
                }
                "otlp_partial" => {
                    next.otlp_partial = v
                        .parse()
                        .map_err(|_| format!("otlp_partial: not a number: {v:?}"))?;
                }
                "fail_next" => next.fail_next = count(k, v)?,
                "hang_next" => next.hang_next = count(k, v)?,
                "latency_ms" => {
                    let ms: u64 = v
                        .parse()
                        .map_err(|_| format!("latency_ms: not a number: {v:?}"))?;
                    next.current.latency = Duration::from_millis(ms);
                }
                "latency" => {
                    next.current.latency =
                        pyrogate::config::units::parse_duration(v).map_err(|e| e.to_string())?;
                }
                "error_rate" => next.current.error_rate = rate(k, v)?,
                "hang_rate" => next.current.hang_rate = rate(k, v)?,
                other => return Err(format!("unknown control parameter {other:?}")),
            }
        }
        let status_given = q.get("status").is_some() || q.get("error_status").is_some();
        if let Some(code) = error.code
            && !status_given
        {
            error.status = code.http_status();
        }
        let for_fail = q.get("fail_next").is_some();
        let for_rate = q.get("error_rate").is_some() || q.get("error_status").is_some();
        if error_given && !for_fail && !for_rate {
            return Err(
                "status/connect_code/retry_after/message need fail_next or error_rate".into(),
            );
        }
        if for_fail {
            next.fail_error = error.clone();
        }
        if for_rate {
            next.current.error = error;
        }
        if next.current.latency >= self.max_latency {
            return Err(format!(
                "latency must be below the hang time {:?}",
                self.max_latency
            ));
        }
        *self = next;
        Ok(())
    }

    /// The current state as JSON (the `/control` answer). `route_code` derives the code of a
    /// status-only error.
    pub fn to_json(&self, route_code: fn(u16) -> Code) -> serde_json::Value {
        serde_json::to_value(State {
            latency_ms: self.current.latency.as_millis() as u64,
            error_rate: self.current.error_rate,
            error_status: self.current.error.status,
            error_code: code_for(&self.current.error, route_code).name(),
            hang_rate: self.current.hang_rate,
            fail_next: self.fail_next,
            fail_status: self.fail_error.status,
            hang_next: self.hang_next,
        })
        .unwrap_or(serde_json::Value::Null)
    }
}

fn count(k: &str, v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n <= MAX_SCRIPTED => Ok(n),
        _ => Err(format!("{k}: expected 0..={MAX_SCRIPTED}, got {v:?}")),
    }
}

fn rate(k: &str, v: &str) -> Result<f64, String> {
    let r: f64 = v.parse().map_err(|_| format!("{k}: not a number: {v:?}"))?;
    check_rate(k, r)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANG: Duration = Duration::from_secs(300);

    fn faults() -> Faults {
        Faults::new(FaultConfig::default(), HANG)
    }

    #[test]
    fn scripted_then_pass() {
        let mut f = faults();
        f.control("fail_next=2&status=503&retry_after=1")
            .expect("valid");
        let want = InjectedError {
            status: 503,
            code: None,
            retry_after: Some(1),
            message: "injected fault".into(),
        };
        assert_eq!(f.decide(0.5, 0.5).0, Decision::Fail(want.clone()));
        assert_eq!(f.decide(0.5, 0.5).0, Decision::Fail(want));
        assert_eq!(f.decide(0.5, 0.5).0, Decision::Pass);
        f.control("hang_next=1&fail_next=1").expect("valid");
        assert_eq!(f.decide(0.5, 0.5).0, Decision::Hang);
        assert_eq!(
            f.decide(0.5, 0.5).0,
            Decision::Fail(InjectedError::new(503))
        );
        assert_eq!(f.decide(0.5, 0.5).0, Decision::Pass);
    }

    #[test]
    fn rates_latency_and_reset() {
        let base = FaultConfig {
            latency: Duration::from_millis(5),
            ..FaultConfig::default()
        };
        let mut f = Faults::new(base, HANG);
        f.control("error_rate=1&error_status=429").expect("valid");
        let (d, lat) = f.decide(0.99, 0.99);
        assert_eq!(d, Decision::Fail(InjectedError::new(429)));
        assert_eq!(lat, Duration::from_millis(5));
        f.control("hang_rate=0.5&latency_ms=0").expect("valid");
        assert_eq!(f.decide(0.4, 0.0).0, Decision::Hang);
        assert_eq!(f.decide(0.6, 0.0).1, Duration::ZERO);
        f.control("reset=1").expect("valid");
        assert_eq!(
            f.decide(0.0, 0.0),
            (Decision::Pass, Duration::from_millis(5))
        );
        // reset first, then the rest of the same call.
        f.control("fail_next=1&reset=1&connect_code=resource_exhausted")
            .expect("valid");
        match f.decide(0.5, 0.5).0 {
            Decision::Fail(e) => {
                assert_eq!(e.status, 429);
                assert_eq!(e.code, Some(Code::ResourceExhausted));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_input_changes_nothing() {
        let mut f = faults();
        let before = f.clone();
        for bad in [
            "fail_next=1&bogus=2",
            "error_rate=2",
            "status=99&fail_next=1",
            "connect_code=nope&fail_next=1",
            "latency_ms=300000",
            "fail_next=-1",
            "status=500",
        ] {
            assert!(f.control(bad).is_err(), "{bad}");
            assert_eq!(f, before, "{bad}");
        }
        let j = f.to_json(Code::from_http_status_inferred);
        assert_eq!(j["fail_next"], 0);
        assert_eq!(j["error_code"], "unavailable");
    }
}
