//! Where DPDK's signals go.
//!
//! net_tap asks the kernel for a signal on every packet its TAP queues
//! receive (`O_ASYNC` with `F_SETSIG`; this DPDK installs a handler for
//! SIGRTMIN+1, seen in /proc/PID/status SigCgt), and its RX burst reads
//! only after the handler has counted one. A process-directed signal lands
//! on any thread that does not block it, interrupting whatever system call
//! that thread is in: a Redis read on a repository thread failed with
//! EINTR (and opened the circuit breaker) under traffic. Every thread baton
//! starts blocks SIGIO and the real-time signals, so they are handled by
//! the main thread, which only waits for the others to finish; and since
//! session 3 [`claim_tap_rx_signals`] leaves net_tap no signal to take at
//! all, so it polls instead.

/// Blocks SIGIO and SIGRTMIN..=SIGRTMAX in the calling thread (and the
/// threads it starts). Returns false if the mask could not be changed.
pub fn block_async_signals() -> bool {
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before
    // use; pthread_sigmask only reads it and changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        if libc::sigemptyset(&mut set) != 0 || libc::sigaddset(&mut set, libc::SIGIO) != 0 {
            return false;
        }
        for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
            if libc::sigaddset(&mut set, sig) != 0 {
                return false;
            }
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
    }
}

/// Leaves net_tap no real-time signal to take, so it polls its queues
/// instead of asking for a signal per received packet. Returns how many
/// signals were claimed (set to ignored); call before `rte_eal_init`.
///
/// Why: this DPDK's tap PMD takes the first real-time signal above
/// SIGRTMIN whose handler is still the default, and from then on the kernel
/// queues one signal per packet (real-time signals do not coalesce). Each
/// one woke the main thread and the EAL interrupt thread: in the session-2
/// bulk figure of `bench/compare` those two threads spent 8.4 s of CPU
/// beside the worker's 7.6 s. When it finds every signal taken, the PMD
/// logs "All rt-signals are in use" and reads its queue on every RX burst,
/// which a busy-polling worker does anyway (an idle poll then costs one
/// `readv` that returns EAGAIN). Nothing else in baton uses these signals;
/// glibc's own (below SIGRTMIN) are left alone.
pub fn claim_tap_rx_signals() -> usize {
    let mut claimed = 0;
    for sig in (libc::SIGRTMIN() + 1)..libc::SIGRTMAX() {
        // SAFETY: `old` and `ign` are local, zero-initialised sigaction
        // structs; sigaction reads `ign` and writes `old`. SIG_IGN installs
        // no code of ours, so no handler safety rules apply.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
                continue;
            }
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            if libc::sigemptyset(&mut ign.sa_mask) == 0 && libc::sigaction(sig, &ign, std::ptr::null_mut()) == 0 {
                claimed += 1;
            }
        }
    }
    claimed
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_real_time_signal_is_left_for_the_tap_pmd() {
        super::claim_tap_rx_signals();
        for sig in (libc::SIGRTMIN() + 1)..libc::SIGRTMAX() {
            // SAFETY: reads the disposition into a local struct.
            let h = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
                old.sa_sigaction
            };
            assert_ne!(h, libc::SIG_DFL, "signal {sig} still free: net_tap would take it");
        }
        // Calling it again claims nothing more and changes nothing.
        assert_eq!(super::claim_tap_rx_signals(), 0);
    }

    #[test]
    fn sigio_is_blocked_in_the_calling_thread_only() {
        let t = std::thread::spawn(|| {
            assert!(super::block_async_signals());
            // SAFETY: reads this thread's mask into a local set.
            unsafe {
                let mut cur: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
                libc::sigismember(&cur, libc::SIGIO) == 1 && libc::sigismember(&cur, libc::SIGRTMIN() + 1) == 1
            }
        });
        assert!(t.join().unwrap(), "SIGIO not blocked after block_async_signals");
        // SAFETY: as above, for the test's own thread.
        let here = unsafe {
            let mut cur: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
            libc::sigismember(&cur, libc::SIGIO) == 1
        };
        assert!(!here, "the other thread's mask leaked into this one");
    }
}
