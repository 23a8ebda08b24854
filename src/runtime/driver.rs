//! Choosing monoio's I/O driver: io_uring when the kernel allows it, epoll ("legacy")
//! otherwise. io_uring can be unavailable for several reasons an operator should hear about:
//! `kernel.io_uring_disabled`, a seccomp filter (containers, systemd `SystemCallFilter`), or
//! a too-small memlock limit on older kernels.

use std::future::Future;
use std::io;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::DriverChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    IoUring,
    Legacy,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::IoUring => "io_uring",
            DriverKind::Legacy => "legacy (epoll)",
        }
    }
}

/// The driver decision, with the reason io_uring was not used (for the one start-up warning).
#[derive(Debug, Clone)]
pub struct DriverDecision {
    pub kind: DriverKind,
    pub fallback_reason: Option<String>,
}

/// Decides once, on the main thread, by actually creating a ring of the configured size.
pub fn choose(choice: DriverChoice, entries: u32) -> Result<DriverDecision, String> {
    match choice {
        DriverChoice::Legacy => Ok(DriverDecision {
            kind: DriverKind::Legacy,
            fallback_reason: None,
        }),
        DriverChoice::IoUring => match probe_io_uring(entries) {
            Ok(()) => Ok(DriverDecision {
                kind: DriverKind::IoUring,
                fallback_reason: None,
            }),
            Err(why) => Err(format!(
                "runtime.driver = \"io_uring\" but io_uring cannot be used: {why} (use driver = \
                 \"auto\" to fall back to epoll)"
            )),
        },
        DriverChoice::Auto => Ok(match probe_io_uring(entries) {
            Ok(()) => DriverDecision {
                kind: DriverKind::IoUring,
                fallback_reason: None,
            },
            Err(why) => DriverDecision {
                kind: DriverKind::Legacy,
                fallback_reason: Some(why),
            },
        }),
    }
}

fn probe_io_uring(entries: u32) -> Result<(), String> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        // 1 allows only privileged processes or members of kernel.io_uring_group; the
        // probe below tells whether we are one of them.
        if v.trim() == "2" {
            return Err("disabled by sysctl kernel.io_uring_disabled = 2".into());
        }
    }
    if !monoio::utils::detect_uring() {
        return Err(io_uring_setup_error());
    }
    RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(entries)
        .build()
        .map(drop)
        .map_err(|e| explain(&e))
}

/// Repeats the failing syscall to report its errno (detect_uring only says yes or no).
fn io_uring_setup_error() -> String {
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup with a zeroed params struct of the kernel's size; on success we
    // close the returned fd at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8u32, params.as_mut_ptr()) };
    if fd >= 0 {
        unsafe { libc::close(fd as i32) };
        return "the kernel lacks io_uring operations monoio needs".into();
    }
    explain(&io::Error::last_os_error())
}

fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => format!("io_uring_setup is not available ({e})"),
        Some(libc::EPERM) | Some(libc::EACCES) => {
            format!("io_uring_setup was denied (seccomp filter or kernel.io_uring_disabled): {e}")
        }
        Some(libc::ENOMEM) => {
            format!("not enough locked memory for the ring (raise LimitMEMLOCK): {e}")
        }
        _ => format!("io_uring_setup failed: {e}"),
    }
}

/// Builds a runtime of the chosen kind (with timers) on the current thread and runs the
/// future made by `make` to completion.
pub fn block_on<F, Fut>(kind: DriverKind, entries: u32, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    match kind {
        DriverKind::IoUring => {
            let build = |flags: RingFlags| {
                let b = RuntimeBuilder::<IoUringDriver>::new().with_entries(entries);
                let b = match flags {
                    RingFlags::Plain => b,
                    tuned => b.uring_builder(tuned_ring(tuned)),
                };
                b.enable_timer().build()
            };
            // A kernel rejects setup flags it does not know with EINVAL: SINGLE_ISSUER
            // needs 6.0, COOP_TASKRUN 5.19; step down to what it has.
            let mut rt = None;
            for flags in [
                RingFlags::CoopSingleIssuer,
                RingFlags::Coop,
                RingFlags::Plain,
            ] {
                match build(flags) {
                    Ok(r) => {
                        rt = Some(r);
                        break;
                    }
                    Err(e)
                        if e.raw_os_error() == Some(libc::EINVAL) && flags != RingFlags::Plain =>
                    {
                        tracing::debug!(?flags, "io_uring setup flags refused, trying fewer");
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(mut rt) = rt else {
                return Err(io::Error::other("no io_uring setup was accepted"));
            };
            Ok(rt.block_on(make()))
        }
        DriverKind::Legacy => {
            let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                .with_entries(entries)
                .enable_timer()
                .build()?;
            Ok(rt.block_on(make()))
        }
    }
}

/// Setup flags of a worker's ring, from the most to the least the kernel must support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RingFlags {
    CoopSingleIssuer,
    Coop,
    Plain,
}

/// Ring setup flags for a ring driven by one thread.
///
/// Without them the kernel interrupts a running worker with an IPI every time a completion
/// (a peer's data on a loopback or LAN socket) arrives from another CPU, so that the task work
/// runs at once; on a VM each IPI is an exit, and under load they cost more CPU than the
/// requests themselves. `COOP_TASKRUN` lets the pending work run at the worker's next kernel
/// entry instead (monoio enters the kernel at least once per loop turn). Measured with
/// fan-out 2 and 16 KiB bodies: +20 % requests per CPU-second.
///
/// `SINGLE_ISSUER` tells the kernel that only the thread that made the ring submits to it,
/// which is this runtime's model (one ring per worker thread, never shared). Measured at
/// fan-out 2 with 1 KiB bodies (docs/performance.md §7): 1.00× nginx against 0.84× without
/// it (medians of 3 interleaved rounds on a loaded machine; the epoll control, which the
/// flag cannot affect, moved 0.81× → 0.90× between the same runs, so most of it is noise;
/// kept because it costs nothing and no run was worse).
///
/// Not used: `DEFER_TASKRUN` (with `SINGLE_ISSUER`, instead of `COOP_TASKRUN`) measured
/// 0.78× nginx in the same rounds, no gain, and would starve completions behind a task that
/// keeps yielding; `TASKRUN_FLAG` only tells a loop that polls the completion queue without
/// entering the kernel that work is pending, and monoio enters the kernel every turn.
fn tuned_ring(flags: RingFlags) -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun();
    if flags == RingFlags::CoopSingleIssuer {
        b.setup_single_issuer();
    }
    b
}
