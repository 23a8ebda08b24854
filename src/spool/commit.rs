//! Group commit on a receiving worker (docs/spool.md §3): requests append their record to
//! the worker's open batch and wait; one commit task per worker writes the batch and
//! syncs it once, then hands the records to the forwarding stage and answers every waiter.
//!
//! The file I/O runs on the worker's own io_uring (`spool.io = "uring"`: `write` and
//! `fdatasync` are submitted like socket I/O, the worker keeps serving meanwhile) or on a
//! plain thread per log (`"thread"`, the only choice on the epoll driver, where a file
//! operation would block the worker).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::log::{Appender, Log, Place};
use super::metrics::SpoolMetrics;
use crate::config::spool::FsyncPolicy;
use crate::util::mailbox::{self, MailSender, Mailbox};
use crate::util::notify::{LocalNotify, LocalSignal};

/// The result every waiter of one batch gets.
pub struct BatchDone {
    signal: LocalSignal,
    result: RefCell<Option<Result<(), String>>>,
}

impl BatchDone {
    fn new() -> Rc<Self> {
        Rc::new(Self {
            signal: LocalSignal::new(),
            result: RefCell::new(None),
        })
    }

    /// Waits for the batch's commit.
    ///
    /// # Errors
    /// The write or the sync failed (the message says why).
    pub async fn wait(&self) -> Result<(), String> {
        self.signal.wait().await;
        self.result
            .borrow()
            .clone()
            .unwrap_or_else(|| Err("spool commit abandoned".into()))
    }

    fn finish(&self, r: Result<(), String>) {
        *self.result.borrow_mut() = Some(r);
        self.signal.fire();
    }
}

struct Open<T> {
    buf: Vec<u8>,
    items: Vec<(Place, T)>,
    /// What every request of the group waits on.
    group: Rc<BatchDone>,
}

impl<T> Open<T> {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            items: Vec::new(),
            group: BatchDone::new(),
        }
    }
}

/// What happens to the records of a committed batch (the forwarding stage's dispatch).
pub type OnCommit<T> = Box<dyn Fn(&Arc<Log>, Vec<(Place, T)>)>;

/// A batch on its way to the I/O thread, and back.
struct WriteJob {
    buf: Vec<u8>,
    first_seq: u64,
    first_pos: u64,
}

/// Who writes the log's files.
enum Io {
    Uring {
        file: RefCell<Option<monoio::fs::File>>,
    },
    Thread {
        tx: crossbeam_channel::Sender<WriteJob>,
        rx: Mailbox<(WriteJob, Result<(), String>)>,
    },
}

/// One worker's group commit.
pub struct Committer<T> {
    log: Arc<Log>,
    /// The uring variant appends on this thread; the thread variant owns its own.
    appender: RefCell<Appender>,
    open: RefCell<Open<T>>,
    wake: LocalNotify,
    io: Io,
    policy: FsyncPolicy,
    interval: Duration,
    metrics: Arc<SpoolMetrics>,
    on_commit: OnCommit<T>,
    running: Cell<bool>,
}

/// Milliseconds since the epoch (records carry their creation time for the age limit).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<T: 'static> Committer<T> {
    /// A committer for `log`; `uring` selects the worker's io_uring for the file I/O.
    ///
    /// # Errors
    /// The I/O thread cannot be started.
    pub fn new(
        log: Arc<Log>,
        segment_bytes: u64,
        policy: FsyncPolicy,
        interval: Duration,
        uring: bool,
        metrics: Arc<SpoolMetrics>,
        on_commit: OnCommit<T>,
    ) -> io::Result<Rc<Self>> {
        let io = if uring {
            Io::Uring {
                file: RefCell::new(None),
            }
        } else {
            let (tx, job_rx) = crossbeam_channel::unbounded::<WriteJob>();
            let (done_tx, rx) = mailbox::mailbox();
            let mut appender =
                Appender::new(log.clone(), segment_bytes).with_spares(metrics.clone())?;
            let m = metrics.clone();
            std::thread::Builder::new()
                .name(format!("pyrogate-spool{}", log.id))
                .spawn(move || io_thread(&mut appender, &job_rx, &done_tx, policy, &m))?;
            Io::Thread { tx, rx }
        };
        let appender = Appender::new(log.clone(), segment_bytes);
        // The uring variant appends on this thread: it gets the preparing thread.
        let appender = if uring {
            appender.with_spares(metrics.clone())?
        } else {
            appender
        };
        Ok(Rc::new(Self {
            appender: RefCell::new(appender),
            log,
            open: RefCell::new(Open::new()),
            wake: LocalNotify::new(),
            io,
            policy,
            interval,
            metrics,
            on_commit,
            running: Cell::new(false),
        }))
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Appends one record (written by `encode` at the given sequence number and
    /// creation time) to the open batch, and returns what to wait on.
    ///
    /// # Errors
    /// `encode`'s error (the record cannot be represented).
    pub fn append<E>(
        self: &Rc<Self>,
        item: T,
        encode: impl FnOnce(&mut Vec<u8>, u64, u64) -> Result<(), E>,
    ) -> Result<Rc<BatchDone>, E> {
        if !self.running.replace(true) {
            monoio::spawn(commit_loop(self.clone()));
        }
        let mut a = self.appender.borrow_mut();
        let mut open = self.open.borrow_mut();
        let unix_ms = unix_ms();
        let start = open.buf.len();
        encode(&mut open.buf, a.next_seq, unix_ms)?;
        let len = (open.buf.len() - start) as u64;
        let place = Place {
            seq: a.next_seq,
            pos: a.next_pos,
            end: a.next_pos + len,
            unix_ms,
        };
        a.next_seq += 1;
        a.next_pos += len;
        self.log.reserve(len);
        open.items.push((place, item));
        let done = open.group.clone();
        drop(open);
        self.wake.notify();
        Ok(done)
    }
}

async fn commit_loop<T: 'static>(c: Rc<Committer<T>>) {
    loop {
        if c.open.borrow().items.is_empty() {
            c.wake.notified().await;
            continue;
        }
        // `batch`: linger while the group keeps growing (requests of this event-loop
        // round are still appending), at most `fsync_interval` after its first record.
        // `always`: no lingering; the group is what arrived since the last commit began.
        let started = Instant::now();
        if c.policy != FsyncPolicy::Always {
            loop {
                let before = c.open.borrow().items.len();
                crate::util::notify::yield_now().await;
                let grew = c.open.borrow().items.len() > before;
                if !grew || started.elapsed() >= c.interval {
                    break;
                }
            }
        }
        let batch = std::mem::replace(&mut *c.open.borrow_mut(), Open::new());
        let Some((first, _)) = batch.items.first() else {
            continue;
        };
        let (first_seq, first_pos, first_ms) = (first.seq, first.pos, first.unix_ms);
        let (end_seq, end_pos) = batch
            .items
            .last()
            .map_or((first_seq, first_pos), |(p, _)| (p.seq + 1, p.end));
        let result = write(&c, batch.buf, first_seq, first_pos).await;
        match &result {
            Ok(()) => {
                c.log.committed_to(first_ms, end_seq, end_pos);
                (c.on_commit)(&c.log, batch.items);
            }
            Err(e) => {
                c.metrics.write_errors.inc();
                crate::util::lograte::warn_limited("spool-write", |suppressed| {
                    tracing::error!(log = c.log.id, suppressed, error = %e, "spool write failed; requests answered 503");
                });
            }
        }
        batch.group.finish(result);
    }
}

async fn write<T>(
    c: &Committer<T>,
    buf: Vec<u8>,
    first_seq: u64,
    first_pos: u64,
) -> Result<(), String> {
    match &c.io {
        Io::Thread { tx, rx } => {
            let job = WriteJob {
                buf,
                first_seq,
                first_pos,
            };
            if tx.send(job).is_err() {
                return Err("spool I/O thread is gone".into());
            }
            match rx.recv().await {
                Some((_, r)) => r,
                None => Err("spool I/O thread is gone".into()),
            }
        }
        Io::Uring { file } => {
            let len = buf.len() as u64;
            let (placed, offset, header) = {
                let mut a = c.appender.borrow_mut();
                let placed = a
                    .place(len, first_seq, first_pos)
                    .map_err(|e| e.to_string())?;
                (placed, a.offset, a.take_header())
            };
            if placed || file.borrow().is_none() {
                let opened = c
                    .appender
                    .borrow()
                    .file
                    .as_ref()
                    .map(File::try_clone)
                    .transpose()
                    .map_err(|e| e.to_string())
                    .and_then(|f| f.ok_or_else(|| "no active segment".to_owned()))
                    .and_then(|f| monoio::fs::File::from_std(f).map_err(|e| e.to_string()));
                match opened {
                    Ok(f) => *file.borrow_mut() = Some(f),
                    Err(e) => {
                        // The segment's header was not written: the next batch starts
                        // another one.
                        c.appender.borrow_mut().failed();
                        return Err(e);
                    }
                }
            }
            // A new segment's header goes out in the same write as its first batch (a
            // copy of one batch per segment).
            let (buf, at) = match header {
                Some(h) => {
                    let mut b = Vec::with_capacity(h.len() + buf.len());
                    b.extend_from_slice(&h);
                    b.extend_from_slice(&buf);
                    (b, 0)
                }
                None => (buf, offset),
            };
            let f = file.borrow_mut().take().ok_or("no active segment")?;
            let r = uring_write(&f, buf, at, c.policy, &c.metrics).await;
            *file.borrow_mut() = Some(f);
            let mut a = c.appender.borrow_mut();
            match &r {
                Ok(()) => a.advance(len),
                Err(_) => a.failed(),
            }
            r
        }
    }
}

/// One write of the batch, then (unless `fsync = "never"`) one `fdatasync` for all of
/// its records: each record is on disk before any request of the group is answered.
async fn uring_write(
    f: &monoio::fs::File,
    buf: Vec<u8>,
    offset: u64,
    policy: FsyncPolicy,
    m: &SpoolMetrics,
) -> Result<(), String> {
    let (r, _) = f.write_all_at(buf, offset).await;
    r.map_err(|e| e.to_string())?;
    if policy != FsyncPolicy::Never {
        let t = Instant::now();
        f.sync_data().await.map_err(|e| e.to_string())?;
        m.fsync.observe(t.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The plain-thread variant: blocking `pwrite` + `fdatasync` per batch.
fn io_thread(
    a: &mut Appender,
    jobs: &crossbeam_channel::Receiver<WriteJob>,
    done: &MailSender<(WriteJob, Result<(), String>)>,
    policy: FsyncPolicy,
    m: &SpoolMetrics,
) {
    while let Ok(job) = jobs.recv() {
        let r = thread_write(a, &job, policy, m).map_err(|e| e.to_string());
        if done.send((job, r)).is_err() {
            return;
        }
    }
}

fn thread_write(
    a: &mut Appender,
    job: &WriteJob,
    policy: FsyncPolicy,
    m: &SpoolMetrics,
) -> io::Result<()> {
    let len = job.buf.len() as u64;
    a.place(len, job.first_seq, job.first_pos)?;
    let offset = a.offset;
    let header = a.take_header();
    let r = (|| {
        let f = a
            .file
            .as_ref()
            .ok_or_else(|| io::Error::other("no active segment"))?;
        if let Some(h) = header {
            f.write_all_at(&h, 0)?;
        }
        f.write_all_at(&job.buf, offset)?;
        if policy != FsyncPolicy::Never {
            let t = Instant::now();
            f.sync_data()?;
            m.fsync.observe(t.elapsed().as_secs_f64());
        }
        Ok(())
    })();
    match &r {
        Ok(()) => a.advance(len),
        Err(_) => a.failed(),
    }
    r
}
