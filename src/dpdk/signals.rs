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
//! the main thread, which only waits for the others to finish.

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

#[cfg(test)]
mod tests {
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
