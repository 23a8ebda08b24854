//! Endpoint host names, resolved off the workers.
//!
//! `getaddrinfo` blocks, for as long as the system resolver takes (seconds when a name
//! server is slow or gone). Run on a worker, that would stall every connection of the core,
//! so lookups run on a thread of their own and a worker only awaits the answer. Answers are
//! cached for [`TTL`]; a name that was used recently is resolved again in the background
//! before its answer expires, so requests almost never wait for a lookup, and a lookup that
//! fails or hangs keeps the last good addresses in use. IP literals never reach the thread.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// How long an answer is used before it is resolved again (the system resolver has its own
/// cache; this bounds how long a changed record goes unnoticed).
pub const TTL: Duration = Duration::from_secs(30);
/// A name unused for this long is no longer refreshed in the background.
const KEEP_FRESH_FOR: Duration = Duration::from_secs(300);
/// How often the thread looks for answers to refresh.
const REFRESH_CHECK: Duration = Duration::from_secs(1);

type Lookup = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Cheap to clone; every clone talks to the same thread and cache.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<HashMap<(String, u16), Entry>>,
    jobs: Sender<(String, u16)>,
}

#[derive(Default)]
struct Entry {
    /// The last successful answer and when it was obtained.
    good: Option<(Vec<SocketAddr>, Instant)>,
    /// The last error, while there has been no answer at all.
    error: Option<String>,
    /// A lookup is queued or running.
    busy: bool,
    last_used: Option<Instant>,
    /// Tasks waiting for the first answer.
    waiters: Vec<Arc<Slot>>,
}

/// Where the thread puts the answer for one waiting task.
#[derive(Default)]
struct Slot {
    result: Mutex<Option<Result<Vec<SocketAddr>, String>>>,
    waker: Mutex<Option<Waker>>,
}

impl Slot {
    fn fill(&self, r: Result<Vec<SocketAddr>, String>) {
        if let Ok(mut g) = self.result.lock() {
            *g = Some(r);
        }
        let waker = self.waker.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The answer of a lookup that had to wait for the resolver thread.
struct Answer(Arc<Slot>);

impl Future for Answer {
    type Output = Result<Vec<SocketAddr>, String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Register first, then look: a fill between the two wakes us.
        if let Ok(mut w) = self.0.waker.lock() {
            *w = Some(cx.waker().clone());
        }
        match self.0.result.lock().ok().and_then(|mut r| r.take()) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

impl Resolver {
    /// A resolver on the system's `getaddrinfo`.
    pub fn system() -> Self {
        Self::with(|host, port| (host, port).to_socket_addrs().map(Iterator::collect))
    }

    /// A resolver on `lookup` (tests give a slow or failing one).
    pub fn with(
        lookup: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let inner = Arc::new(Inner {
            entries: Mutex::new(HashMap::new()),
            jobs: tx,
        });
        let weak = Arc::downgrade(&inner);
        let lookup: Box<Lookup> = Box::new(lookup);
        // The thread ends when the last handle is dropped (its job channel closes).
        let spawned = std::thread::Builder::new()
            .name("pyrogate-dns".into())
            .spawn(move || run(rx, weak, lookup));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the resolver thread; host names will not resolve");
        }
        Self { inner }
    }

    /// The addresses of `host:port`: at once for an IP literal or a cached answer, else
    /// once the resolver thread has one. Never blocks the calling thread.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let slot = {
            let now = Instant::now();
            let Ok(mut entries) = self.inner.entries.lock() else {
                return Err(format!("resolve {host}: resolver state poisoned"));
            };
            let e = entries.entry((host.to_owned(), port)).or_default();
            e.last_used = Some(now);
            if let Some((addrs, at)) = &e.good {
                let addrs = addrs.clone();
                if now.duration_since(*at) >= TTL && !e.busy {
                    // Stale: use it now, refresh behind the request's back.
                    e.busy = true;
                    let _ = self.inner.jobs.send((host.to_owned(), port));
                }
                return Ok(addrs);
            }
            let slot = Arc::new(Slot::default());
            e.waiters.push(slot.clone());
            if !e.busy {
                e.busy = true;
                let _ = self.inner.jobs.send((host.to_owned(), port));
            }
            slot
        };
        Answer(slot).await
    }

    /// Names whose answers are cached (for tests and diagnostics).
    pub fn cached(&self) -> usize {
        self.inner
            .entries
            .lock()
            .map(|e| e.values().filter(|x| x.good.is_some()).count())
            .unwrap_or(0)
    }
}

/// The resolver thread: answers queued lookups, and refreshes names in use before their
/// answers expire.
fn run(jobs: Receiver<(String, u16)>, inner: std::sync::Weak<Inner>, lookup: Box<Lookup>) {
    loop {
        let job = match jobs.recv_timeout(REFRESH_CHECK) {
            Ok(j) => Some(j),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        let todo: Vec<(String, u16)> = match job {
            Some(j) => vec![j],
            None => due_for_refresh(&inner),
        };
        for (host, port) in todo {
            let result = match lookup(&host, port) {
                Ok(a) if a.is_empty() => Err(format!("resolve {host}: no addresses")),
                Ok(a) => Ok(a),
                Err(e) => Err(format!("resolve {host}: {e}")),
            };
            settle(&inner, host, port, result);
        }
    }
}

/// Names used recently whose answer is older than half the TTL and not being looked up.
fn due_for_refresh(inner: &Inner) -> Vec<(String, u16)> {
    let now = Instant::now();
    let Ok(mut entries) = inner.entries.lock() else {
        return Vec::new();
    };
    entries
        .iter_mut()
        .filter(|(_, e)| {
            !e.busy
                && e.last_used
                    .is_some_and(|u| now.duration_since(u) < KEEP_FRESH_FOR)
                && e.good
                    .as_ref()
                    .is_some_and(|(_, at)| now.duration_since(*at) >= TTL / 2)
        })
        .map(|(k, e)| {
            e.busy = true;
            k.clone()
        })
        .collect()
}

/// Stores an answer and hands it to the waiting tasks. A failed refresh keeps the last
/// good answer (and says so once in the log).
fn settle(inner: &Inner, host: String, port: u16, result: Result<Vec<SocketAddr>, String>) {
    let waiters = {
        let Ok(mut entries) = inner.entries.lock() else {
            return;
        };
        let e = entries.entry((host, port)).or_default();
        e.busy = false;
        match &result {
            Ok(addrs) => {
                e.good = Some((addrs.clone(), Instant::now()));
                e.error = None;
            }
            Err(msg) if e.good.is_some() => {
                tracing::warn!(error = %msg, "re-resolving an endpoint failed; keeping its last addresses");
            }
            Err(msg) => e.error = Some(msg.clone()),
        }
        std::mem::take(&mut e.waiters)
    };
    for w in waiters {
        w.fill(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(f)
    }

    #[test]
    fn literals_cache_and_errors() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let r = Resolver::with(move |host, port| {
            c.fetch_add(1, Ordering::SeqCst);
            match host {
                "good.test" => Ok(vec![SocketAddr::from(([127, 0, 0, 7], port))]),
                _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
            }
        });
        block_on(async {
            let lit = r.resolve("127.0.0.1", 80).await.expect("literal");
            assert_eq!(lit, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
            let a = r.resolve("good.test", 4040).await.expect("resolves");
            assert_eq!(a, vec![SocketAddr::from(([127, 0, 0, 7], 4040))]);
            let b = r.resolve("good.test", 4040).await.expect("cached");
            assert_eq!(a, b);
            let e = r.resolve("bad.test", 1).await.expect_err("fails");
            assert!(e.contains("bad.test") && e.contains("no such host"), "{e}");
        });
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the literal and the cache hit cost no lookup"
        );
        assert_eq!(r.cached(), 1);
    }

    /// A lookup that hangs for 5 s does not hold up the task's thread: timers and other
    /// tasks of the same runtime keep running on time meanwhile.
    #[test]
    fn a_hanging_lookup_does_not_block_the_runtime() {
        let r = Resolver::with(|_, port| {
            std::thread::sleep(Duration::from_secs(5));
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        });
        block_on(async move {
            let started = Instant::now();
            let lookup = monoio::spawn({
                let r = r.clone();
                async move { r.resolve("slow.test", 1).await }
            });
            // 20 ticks of 10 ms: on a blocked thread the first would take 5 s.
            for _ in 0..20 {
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
            let ticks = started.elapsed();
            assert!(ticks < Duration::from_secs(2), "timers ran {ticks:?} late");
            let addrs = lookup.await.expect("resolved after the hang");
            assert!(started.elapsed() >= Duration::from_secs(4));
            assert_eq!(addrs.len(), 1);
        });
    }
}
