//! Child processes of `demo` and `bench` (gateways, sinks, nginx): started pinned to chosen
//! CPUs and with a chosen `RLIMIT_NOFILE`, their output kept for error messages, and always
//! stopped: [`Managed`] sends `SIGTERM`, waits a bounded time, then `SIGKILL`s the process
//! group on drop.
//!
//! Three layers make sure nothing outlives a benchmark:
//! * the [`Managed`] guard (normal exits, errors, panics that unwind);
//! * [`install_interrupt_handler`]: `SIGINT`/`SIGTERM` only set a flag that the benchmark
//!   loops poll, so a Ctrl-C ends the current run and the guards clean up (a second Ctrl-C
//!   kills at once);
//! * `PR_SET_PDEATHSIG`: if this process is killed outright, the kernel sends `SIGKILL` to
//!   each direct child. (Grandchildren such as nginx's workers are in the child's process
//!   group, which the guard kills as a whole; only a `SIGKILL` of this process can orphan
//!   them, and for that case [`PGID_FILE_ENV`] names a file that always lists the process
//!   groups still running, for a wrapper script's exit trap.)

pub mod children;
pub mod procfs;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Output lines kept per child for error messages.
const TAIL_LINES: usize = 40;
/// Lines buffered for [`Managed::wait_for_line`]; more are dropped (they stay in the tail).
const LINE_QUEUE: usize = 1024;
/// Poll interval of every bounded wait here.
const POLL: Duration = Duration::from_millis(10);
/// How long a child may take to exit after `SIGKILL` before we give up reaping it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Environment variable: a file kept up to date with the process groups of the running
/// children (one id per line), so that `scripts/bench.sh` can kill what is left if this
/// process is killed outright.
pub const PGID_FILE_ENV: &str = "PYROGATE_BENCH_PGID_FILE";

static LIVE_GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Adds or removes a process group and rewrites the [`PGID_FILE_ENV`] file.
fn track_group(pgid: u32, live: bool) {
    let mut g = LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner());
    if live {
        g.push(pgid);
    } else {
        g.retain(|p| *p != pgid);
    }
    if let Some(path) = std::env::var_os(PGID_FILE_ENV) {
        let text: String = g.iter().map(|p| format!("{p}\n")).collect();
        let _ = std::fs::write(path, text);
    }
}

/// Where and how a child runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnOpts {
    /// CPUs the child (and every thread it starts) may run on; `None` = inherit.
    pub cpus: Option<Vec<usize>>,
    /// `RLIMIT_NOFILE` (soft and hard) of the child; `None` = inherit.
    pub nofile: Option<u64>,
}

/// A running child; stopped (and its process group killed) on drop.
pub struct Managed {
    name: String,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    lines: crossbeam_channel::Receiver<String>,
    /// Grace period of [`Managed::stop`] between `SIGTERM` and `SIGKILL`.
    pub grace: Duration,
    stopped: bool,
}

impl Managed {
    /// Starts `cmd` (stdin closed, stdout and stderr captured) in its own process group.
    pub fn spawn(name: &str, mut cmd: Command, opts: &SpawnOpts) -> Result<Self, String> {
        let cpu_set = opts.cpus.as_deref().map(cpu_set);
        let nofile = opts.nofile;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls on data prepared before the fork (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(set) = &cpu_set
                    && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(n) = nofile {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start {program}: {e}"))?;
        track_group(child.id(), true);
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let (tx, rx) = crossbeam_channel::bounded(LINE_QUEUE);
        if let Some(out) = child.stdout.take() {
            pump(out, tail.clone(), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, tail.clone(), tx);
        }
        Ok(Self {
            name: name.to_owned(),
            child,
            tail,
            lines: rx,
            grace: Duration::from_secs(5),
            stopped: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its descendants (nginx: master and workers).
    pub fn pids(&self) -> Vec<u32> {
        let mut out = vec![self.pid()];
        let mut i = 0;
        while i < out.len() && out.len() < 1024 {
            out.extend(procfs::children(out[i]));
            i += 1;
        }
        out
    }

    /// `Some(status)` once the child has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines the child printed (stdout and stderr), for error messages.
    pub fn tail(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits until `pick` accepts a line of output, at most `timeout`; fails early when the
    /// child exits.
    pub fn wait_for_line<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        let end = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(POLL) {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return Ok(v);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(POLL);
                }
            }
            if let Some(st) = self.exited() {
                return Err(format!("{} exited ({st}):\n{}", self.name, self.tail()));
            }
            if Instant::now() >= end {
                return Err(format!(
                    "{} did not become ready within {:?}:\n{}",
                    self.name,
                    timeout,
                    self.tail()
                ));
            }
        }
    }

    /// Polls `ready` until it returns true, at most `timeout`; fails early when the child
    /// exits.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let end = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(st) = self.exited() {
                return Err(format!("{} exited ({st}):\n{}", self.name, self.tail()));
            }
            if Instant::now() >= end {
                return Err(format!(
                    "{} did not become ready within {:?}:\n{}",
                    self.name,
                    timeout,
                    self.tail()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `SIGTERM`, up to [`Managed::grace`] for the process to exit, then `SIGKILL` of the
    /// whole process group. Returns the exit status when the child exited by itself.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if self.stopped {
            return self.exited();
        }
        self.stopped = true;
        let pid = self.pid() as libc::pid_t;
        let mut status = self.exited();
        if status.is_none() {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let end = Instant::now() + self.grace;
            while status.is_none() && Instant::now() < end {
                std::thread::sleep(POLL);
                status = self.exited();
            }
        }
        // The group (nginx workers, anything the child forked) goes too. The group id is
        // the child's pid (setpgid(0, 0) above); it stays reserved while any member lives.
        // SAFETY: kill(2) of a process group we created.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        if status.is_none() {
            let end = Instant::now() + KILL_WAIT;
            while status.is_none() && Instant::now() < end {
                std::thread::sleep(POLL);
                status = self.exited();
            }
        }
        track_group(self.pid(), false);
        status
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies a child's output, line by line, into the tail and the line queue.
fn pump(
    out: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
    tx: crossbeam_channel::Sender<String>,
) {
    let _ = std::thread::Builder::new()
        .name("child-output".into())
        .spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let l = line.trim_end().to_owned();
                {
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(l.clone());
                }
                let _ = tx.try_send(l);
            }
        });
}

fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c < libc::CPU_SETSIZE as usize {
            // SAFETY: `c` is within the set's size.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
    }
    set
}

/// Restricts the calling thread (and threads it starts later) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), String> {
    let set = cpu_set(cpus);
    // SAFETY: sched_setaffinity on the calling thread with a valid set.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot pin to CPUs {cpus:?}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `cpu_set`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity fills the set we own.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c` is within the set's size.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Raises this process's `RLIMIT_NOFILE` to at least `want` when allowed: the soft limit up
/// to the hard one, and both beyond it when privileged (`CAP_SYS_RESOURCE`). Returns the
/// soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    let want = want as libc::rlim_t;
    if lim.rlim_cur >= want {
        return lim.rlim_cur;
    }
    let tries = [
        libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(lim.rlim_max),
        },
        libc::rlimit {
            rlim_cur: want.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        },
    ];
    for t in tries {
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &t) } == 0 {
            return t.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// This process's `RLIMIT_NOFILE` as `(soft, hard)`; zeros when it cannot be read.
fn nofile_limits() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (0, 0);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// This process's hard `RLIMIT_NOFILE`.
pub fn nofile_hard_limit() -> u64 {
    nofile_limits().1
}

/// This process's soft `RLIMIT_NOFILE`.
pub fn nofile_soft_limit() -> u64 {
    nofile_limits().0
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes the first `SIGINT`/`SIGTERM` set [`interrupted`] instead of killing the process
/// (the handler resets itself, so a second signal kills as usual).
pub fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic, which
        // is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether a `SIGINT`/`SIGTERM` arrived since [`install_interrupt_handler`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The `pyrogate` binary next to the running executable (the workspace's
/// `target/<profile>/`), or `explicit` when given.
pub fn sibling_binary(
    name: &str,
    explicit: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "the {name} binary is missing: expected {} (build it with `cargo build --release --workspace --bins`, or pass its path)",
            p.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_pinned_captured_and_stopped() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; echo oops >&2; grep Cpus_allowed_list /proc/self/status; ulimit -n; exec sleep 30"]);
        let mut m = Managed::spawn(
            "sh",
            cmd,
            &SpawnOpts {
                cpus: Some(vec![cpus[0]]),
                nofile: Some(512),
            },
        )
        .expect("spawn");
        let want = format!("Cpus_allowed_list:\t{}", cpus[0]);
        m.wait_for_line(Duration::from_secs(5), |l| (l == want).then_some(()))
            .expect("pinned");
        m.wait_for_line(Duration::from_secs(5), |l| (l == "512").then_some(()))
            .expect("rlimit");
        assert!(m.tail().contains("hello") && m.tail().contains("oops"));
        let pid = m.pid();
        m.grace = Duration::from_millis(500);
        let t = Instant::now();
        m.stop();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn waiting_fails_fast_when_the_child_exits() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bye; exit 3"]);
        let mut m = Managed::spawn("sh", cmd, &SpawnOpts::default()).expect("spawn");
        let t = Instant::now();
        let e = m
            .wait_until(Duration::from_secs(10), || false)
            .expect_err("exited");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(e.contains("exited"), "{e}");
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let e = sibling_binary("no-such-binary-here", None).expect_err("missing");
        assert!(
            e.contains("no-such-binary-here") && e.contains("cargo build"),
            "{e}"
        );
    }
}
