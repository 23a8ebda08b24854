//! One delivery: the retry loop of an envelope to one destination, with attempts on
//! pooled keep-alive connections, per-attempt budgets, jittered backoff, `Retry-After`, and
//! the deadline rules that let a caller still retry (docs/timeout-chain.md). It runs on a
//! worker (`dispatch = "worker"`) or on a writer thread, with that thread's [`Local`].

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Core;
use super::ack::Delivery;
use super::destination::{Destination, Job};
use super::envelope::{Kind, Outcome};
use super::head;
use super::local::Local;
use super::retry::{Attempt, Backoff, classify_error, sleep_for};
use crate::http::client::{ClientConn, ClientError};
use crate::http::h2::client::H2Client;

/// An attempt shorter than this is not worth starting.
const MIN_ATTEMPT: Duration = Duration::from_millis(20);
/// Bound on establishing a connection (the attempt budget bounds it further).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts delivering `job` to `d` on this thread's runtime.
pub fn spawn(state: &Rc<Local>, job: Job, d: Arc<Destination>, core: Arc<Core>) {
    state.started(&d);
    monoio::spawn(deliver(job, d, state.clone(), core));
}

async fn deliver(job: Job, d: Arc<Destination>, state: Rc<Local>, core: Arc<Core>) {
    if job.spooled.is_some() && core.spool_stopping() {
        // Shutting down: a spooled record not yet started stays in the spool for the next
        // run instead of holding the drain up.
        d.release(job.reserved);
        state.finished(&d);
        return;
    }
    d.m.inflight.inc();
    let started = Instant::now();
    let result = match &job.spooled {
        // Boxed, as are the other rare paths below (HTTP/2 endpoints, connecting): an async
        // fn's future is as large as its largest branch, and this task's future is copied
        // into its task cell on every spawn, twice per forwarded request at fan-out 2. Inline,
        // they made it 7.8 KiB (monoio's timer entries are 128-byte aligned and 512 B each).
        Some(sp) => Box::pin(spooled_attempts(&job, sp.expires, &d, &state, &core)).await,
        None => attempts(&job, job.deadline, &d, &state, &core).await,
    };
    let elapsed = started.elapsed().as_secs_f64();
    match job.env.kind {
        Kind::Push => d.m.latency_endpoint.observe(elapsed),
        Kind::Ingest => d.m.ingest_endpoint.observe(elapsed),
        Kind::Otlp => d.m.otlp_endpoint.observe(elapsed),
    }
    match &result {
        Delivery::Ok => {
            d.m.sent_bytes.inc_by(job.env.profile_bytes);
            d.m.sent_profiles.inc_by(job.env.profiles);
        }
        Delivery::Failed(o) => {
            d.m.dropped_bytes.inc_by(job.env.profile_bytes);
            d.m.dropped_profiles.inc_by(job.env.profiles);
            log_failure(&d, o);
        }
    }
    d.release(job.reserved);
    if let Some(ack) = &job.ack {
        ack.report(result);
    }
    d.m.inflight.dec();
    state.finished(&d);
}

fn log_failure(d: &Destination, o: &Outcome) {
    let msg = match o {
        Outcome::Rejected { message, .. } | Outcome::Unavailable { message, .. } => {
            message.as_str()
        }
        _ => "",
    };
    crate::util::lograte::warn_limited(&d.cfg.url_string, |suppressed| {
        tracing::warn!(endpoint = %d.cfg.url_string, suppressed, error = msg, "failed to forward profile");
    });
}

/// A spooled record's delivery: rounds of the retry loop, each bounded by the delivery
/// timeout, until it is delivered or refused for good, the record expires, or the gateway
/// shuts down (the record then stays in the spool). Between rounds it waits the endpoint's
/// `max_backoff`.
async fn spooled_attempts(
    job: &Job,
    expires: Instant,
    d: &Destination,
    state: &Local,
    core: &Core,
) -> Delivery {
    let mut deadline = job.deadline;
    loop {
        let r = attempts(job, deadline, d, state, core).await;
        if !matches!(r, Delivery::Failed(Outcome::Unavailable { .. })) {
            return r;
        }
        let now = Instant::now();
        if now >= expires || core.spool_stopping() {
            return r;
        }
        let pause = d.cfg.max_backoff.min(expires - now);
        // Wake early for shutdown: the writer waits for this task to end.
        let step = Duration::from_millis(100);
        let until = now + pause;
        while Instant::now() < until && !core.spool_stopping() {
            monoio::time::sleep(step.min(until.saturating_duration_since(Instant::now()))).await;
        }
        d.m.retries.inc();
        deadline = (Instant::now() + core.snapshot().delivery_timeout).min(expires);
    }
}

/// The retry loop of one delivery (docs/alloy-compat.md §9), bounded by `deadline`.
async fn attempts(
    job: &Job,
    deadline: Instant,
    d: &Destination,
    state: &Local,
    core: &Core,
) -> Delivery {
    let cfg = &d.cfg;
    let reserve = core.snapshot().deadline_reserve;
    let mut backoff = Backoff::new(cfg.min_backoff, cfg.max_backoff);
    let mut attempt: u32 = 0;
    let mut last_status: Option<u16> = None;
    let mut last_message = String::from("deadline exceeded before the first attempt");
    let verb = job.env.kind.verb();
    loop {
        let now = Instant::now();
        let remaining = deadline
            .saturating_duration_since(now)
            .saturating_sub(reserve);
        if remaining < MIN_ATTEMPT {
            break;
        }
        attempt += 1;
        let more_allowed = cfg.max_attempts == 0 || attempt < cfg.max_attempts;
        let mut budget = cfg.remote_timeout.min(remaining);
        if job.caller_waiting && more_allowed {
            // Leave half of the caller's remaining budget for a retry: a first attempt that
            // hangs must not eat the whole budget (the timeout chain of docs/timeout-chain.md §2, §6).
            budget = budget.min((remaining / 2).max(MIN_ATTEMPT));
        }
        let t0 = Instant::now();
        let result = send(job, d, state, budget, core).await;
        let took = t0.elapsed().as_secs_f64();
        match job.env.kind {
            Kind::Push => d.m.latency_downstream.observe(took),
            Kind::Ingest => d.m.ingest_downstream.observe(took),
            Kind::Otlp => d.m.otlp_downstream.observe(took),
        }
        match result {
            Attempt::Delivered => return Delivery::Ok,
            Attempt::Permanent {
                status,
                code,
                message,
            } => {
                return Delivery::Failed(Outcome::Rejected {
                    status,
                    code,
                    message: format!(
                        "failed to {verb} to endpoint {} ({attempt} retries): {message}",
                        cfg.url_string
                    ),
                });
            }
            Attempt::Retryable {
                status,
                retry_after,
                message,
            } => {
                if status.is_some() {
                    last_status = status;
                }
                last_message = message;
                if !more_allowed {
                    break;
                }
                let sleep = sleep_for(
                    backoff.next_sleep(),
                    retry_after,
                    cfg.min_backoff,
                    cfg.max_backoff,
                );
                let next_start = Instant::now() + sleep + MIN_ATTEMPT + reserve;
                let spooled_stop = job.spooled.is_some() && core.spool_stopping();
                if next_start >= deadline || core.shutdown_deadline_passed() || spooled_stop {
                    break;
                }
                d.m.retries.inc();
                Box::pin(monoio::time::sleep(sleep)).await;
            }
        }
    }
    Delivery::Failed(Outcome::Unavailable {
        last_status,
        message: format!(
            "failed to {verb} to endpoint {} ({attempt} retries): {last_message}",
            cfg.url_string
        ),
    })
}

/// One attempt: a pooled connection (or a new one), one request. A reused connection that
/// turns out to be dead is replaced once, at no cost to the attempt count.
async fn send(job: &Job, d: &Destination, state: &Local, budget: Duration, core: &Core) -> Attempt {
    let deadline = Instant::now() + budget;
    let snap = core.snapshot();
    // Workers run no writer loop: prune here too (rate-limited inside).
    state.prune_idle(snap.idle_conn_timeout, || {
        snap.all().map(|x| x.id).collect()
    });
    let head = head::build(&job.env, d, budget, snap.forward_tenant);
    if d.cfg.http2 {
        return Box::pin(send_h2(
            job,
            d,
            state,
            &head,
            deadline,
            core,
            snap.idle_conn_timeout,
        ))
        .await;
    }
    let pool = state.pool(d);
    for fresh_try in 0..2 {
        let pooled = if fresh_try == 0 {
            pool.take(snap.idle_conn_timeout)
        } else {
            None
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => match Box::pin(connect(d, deadline, core)).await {
                Ok(c) => c,
                Err(e) => return classify_error(&e),
            },
        };
        match conn.request(head.clone(), &job.env.body, deadline).await {
            Ok(resp) => {
                let verdict = job.env.kind.classify(&resp, d.cfg.retry_on_http_429);
                if verdict == Attempt::Delivered
                    && let Some(ack) = &job.ack
                    && let Some(p) = job.env.kind.partial_success(&resp)
                {
                    ack.partial(&d.cfg.url_string, p);
                }
                if resp.reusable {
                    pool.put(conn, snap.max_idle_conns);
                }
                return verdict;
            }
            Err(e) if reused && e.is_stale_connection() => continue,
            Err(e) => return classify_error(&e),
        }
    }
    classify_error(&ClientError::Closed("connection closed twice".into()))
}

/// One attempt over HTTP/2: the thread's connection to `d` (or a new one) carries the
/// request as one stream among others. A connection that turns out to be gone (GOAWAY,
/// refused stream, closed) is replaced once, as a stale HTTP/1.1 connection is.
async fn send_h2(
    job: &Job,
    d: &Destination,
    state: &Local,
    head: &bytes::Bytes,
    deadline: Instant,
    core: &Core,
    idle_timeout: Duration,
) -> Attempt {
    let https = d.tls.is_some();
    for fresh_try in 0..2 {
        let existing = if fresh_try == 0 {
            state.h2(d, idle_timeout)
        } else {
            None
        };
        let reused = existing.is_some();
        let conn = match existing {
            Some(c) => c,
            None => match Box::pin(connect_h2(d, deadline, core)).await {
                Ok(c) => {
                    let c = Rc::new(c);
                    state.set_h2(d, c.clone());
                    c
                }
                Err(e) => return classify_error(&e),
            },
        };
        match conn
            .request(head, &job.env.body, &d.cfg.url.authority, https, deadline)
            .await
        {
            Ok(resp) => {
                let verdict = job.env.kind.classify(&resp, d.cfg.retry_on_http_429);
                if verdict == Attempt::Delivered
                    && let Some(ack) = &job.ack
                    && let Some(p) = job.env.kind.partial_success(&resp)
                {
                    ack.partial(&d.cfg.url_string, p);
                }
                return verdict;
            }
            Err(e) => {
                state.drop_h2(d);
                if !(reused && e.is_stale_connection()) {
                    return classify_error(&e);
                }
            }
        }
    }
    classify_error(&ClientError::Closed("connection closed twice".into()))
}

/// The endpoint's addresses. The lookup runs on the resolver thread; this task only waits
/// (bounded by the attempt).
async fn resolve(
    d: &Destination,
    deadline: Instant,
    core: &Core,
) -> Result<Vec<std::net::SocketAddr>, ClientError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let lookup = core.resolver.resolve(&d.cfg.url.host, d.cfg.url.port);
    match monoio::time::timeout(remaining, lookup).await {
        Err(_) => Err(ClientError::Timeout),
        Ok(Err(m)) => Err(ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            m,
        ))),
        Ok(Ok(a)) => Ok(a.into_iter().collect()),
    }
}

async fn connect_h2(
    d: &Destination,
    deadline: Instant,
    core: &Core,
) -> Result<H2Client, ClientError> {
    let mut last = None;
    for addr in resolve(d, deadline, core).await? {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let tls = d
            .tls
            .as_ref()
            .and_then(|t| t.h2_config.as_ref().map(|c| (c, &t.server_name)));
        match H2Client::connect(addr, remaining.min(CONNECT_TIMEOUT), tls).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClientError::Timeout))
}

async fn connect(
    d: &Destination,
    deadline: Instant,
    core: &Core,
) -> Result<ClientConn, ClientError> {
    let mut last = None;
    for addr in resolve(d, deadline, core).await? {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let tls = d.tls.as_ref().map(|t| (&t.connector, &t.server_name));
        match ClientConn::connect(addr, remaining.min(CONNECT_TIMEOUT), tls).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClientError::Timeout))
}
