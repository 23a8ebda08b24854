//! Transparent huge pages off for the process.
//!
//! mimalloc (v3, eager arena commit) asks the kernel for transparent huge pages on its arenas
//! (`madvise(MADV_HUGEPAGE)`), and with THP the kernel backs a touched arena range with whole
//! 2 MiB pages. The heap of 10,000 idle keep-alive connections is about 7 MB of small
//! objects (each connection's task and socket state, [docs/performance.md §6](../../docs/performance.md)),
//! but spread over huge pages it became 22 MB of RSS: measured with `scripts/bench-memory.sh`
//! conditions, 2,307 B per idle connection on io_uring with `AnonHugePages` at 30 MB, against
//! 813 B with THP disabled (and 16 MB → 8.7 MB of RSS at start). A gateway's heap is small and
//! its hot data fits the TLB without huge pages, so nothing is lost in throughput (same
//! document, §7).

/// `prctl(PR_SET_THP_DISABLE, 1)`: pages faulted from now on, by every thread of the process
/// (and its children), are small pages. Called as the first thing `main` does (so that the
/// configuration's pages are small too) and again in `Server::start` before the workers
/// start (for other users of the runtime, such as the load generator's sink); a kernel without the call (before 3.15) or a sandbox refusing it leaves THP as it was,
/// which costs memory, not correctness.
pub fn disable() {
    // SAFETY: prctl with integer arguments only; it changes a flag of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "prctl(PR_SET_THP_DISABLE) refused; transparent huge pages stay as configured"
        );
    }
}

#[cfg(test)]
mod tests {
    /// After `disable`, the kernel reports THP disabled for this process (the flag is
    /// per process, so this also disables it for the rest of the test binary: harmless).
    #[test]
    fn disable_sets_the_process_flag() {
        super::disable();
        // SAFETY: prctl query with integer arguments.
        let v = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(v, 1);
    }
}
