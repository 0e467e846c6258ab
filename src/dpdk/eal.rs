//! EAL start-up and teardown, EAL argument building, thread registration.

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::{check_errno, DpdkError};
use super::ffi;
use super::LcoreId;

/// Set once `rte_eal_init` has been attempted: DPDK cannot initialise twice
/// in one process, not even after `rte_eal_cleanup`.
static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// Options from which [`eal_args`] builds an EAL command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalOptions {
    /// Cores for `-l` (the first is the main lcore). Empty means `0`.
    pub cores: Vec<usize>,
    /// `--vdev` specs, e.g. `net_tap0,iface=bt0` or `net_null0`.
    pub vdevs: Vec<String>,
    /// `--file-prefix`: must be unique per process on one host.
    pub file_prefix: String,
    /// Memory to reserve with `-m` when running without hugepages.
    pub memory_mb: usize,
    /// `None`: decide from `/sys/kernel/mm/hugepages/*/free_hugepages`;
    /// `Some(true)`: always `--no-huge`; `Some(false)`: never.
    pub no_huge: Option<bool>,
    /// `--in-memory`: no shared runtime files, no secondary processes
    /// (default on, so parallel test processes never collide).
    pub in_memory: bool,
    /// `--no-pci`: skip the PCI bus scan (machines with vdevs only).
    pub no_pci: bool,
    /// `--log-level` value, e.g. `"notice"` or `"lib.eal:debug"`.
    pub log_level: Option<String>,
    /// Extra `-d` driver paths, on top of the EAL's built-in plugin dir.
    pub driver_paths: Vec<String>,
}

impl Default for EalOptions {
    fn default() -> Self {
        EalOptions {
            cores: vec![0],
            vdevs: Vec::new(),
            file_prefix: format!("baton-{}", std::process::id()),
            memory_mb: 256,
            no_huge: None,
            in_memory: true,
            no_pci: false,
            log_level: None,
            driver_paths: Vec::new(),
        }
    }
}

/// Total free hugepages over every size under `root`
/// (normally `/sys/kernel/mm/hugepages`). Missing or unreadable: 0.
pub fn free_hugepages_in(root: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(root) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("free_hugepages")).ok())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .sum()
}

/// Free hugepages on this host.
pub fn free_hugepages() -> u64 {
    free_hugepages_in(Path::new("/sys/kernel/mm/hugepages"))
}

/// Builds the EAL argument vector (`argv[0]` included) from `opts`. With
/// `no_huge: None` it reads the free hugepage count; when there are none it
/// adds `--no-huge -m <memory_mb>` and logs one line saying so.
pub fn eal_args(opts: &EalOptions) -> Vec<String> {
    let no_huge = match opts.no_huge {
        Some(v) => v,
        None => {
            let free = free_hugepages();
            if free == 0 {
                log::warn!(
                    "dpdk: no free hugepages on this host, starting the EAL with --no-huge -m {} \
                     (slower; run ci/setup to reserve hugepages)",
                    opts.memory_mb
                );
            }
            free == 0
        }
    };
    eal_args_resolved(opts, no_huge)
}

/// [`eal_args`] with the hugepage decision already made (pure).
pub fn eal_args_resolved(opts: &EalOptions, no_huge: bool) -> Vec<String> {
    let mut a = vec!["baton".to_string()];
    let cores = if opts.cores.is_empty() {
        "0".to_string()
    } else {
        opts.cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    a.push("-l".into());
    a.push(cores);
    a.push(format!("--file-prefix={}", opts.file_prefix));
    // `--no-huge` turns on legacy memory mode, which the EAL refuses to
    // combine with `--in-memory`; `--no-shconf` gives the same "no shared
    // runtime files" property there.
    if opts.in_memory {
        a.push(if no_huge { "--no-shconf" } else { "--in-memory" }.into());
    }
    if no_huge {
        a.push("--no-huge".into());
        a.push("-m".into());
        a.push(opts.memory_mb.to_string());
    }
    if opts.no_pci {
        a.push("--no-pci".into());
    }
    a.push("--no-telemetry".into());
    if let Some(l) = &opts.log_level {
        a.push(format!("--log-level={l}"));
    }
    for d in &opts.driver_paths {
        a.push("-d".into());
        a.push(d.clone());
    }
    for v in &opts.vdevs {
        a.push(format!("--vdev={v}"));
    }
    a
}

struct EalInner {
    /// The EAL's runtime directory (`/var/run/dpdk/<file-prefix>` as
    /// root), removed at cleanup when empty.
    runtime_dir: Option<std::path::PathBuf>,
}

/// Where this DPDK (22.11, `eal_create_runtime_dir`) puts its runtime
/// files for the `--file-prefix` in `args`: under `$RUNTIME_DIRECTORY`
/// if set, else `/var/run` for root, else `$XDG_RUNTIME_DIR` or `/tmp`;
/// then `dpdk/<prefix>`.
fn runtime_dir(args: &[String]) -> Option<std::path::PathBuf> {
    let prefix = args.iter().find_map(|a| a.strip_prefix("--file-prefix=")).unwrap_or("rte");
    if prefix.is_empty() || prefix.contains('/') {
        return None;
    }
    let base = if let Some(d) = std::env::var_os("RUNTIME_DIRECTORY") {
        std::path::PathBuf::from(d)
    // SAFETY: getuid has no preconditions.
    } else if unsafe { libc::getuid() } == 0 {
        std::path::PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "/tmp".into())
    };
    Some(base.join("dpdk").join(prefix))
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: this runs once, when the last handle to the EAL (held by
        // the Eal value and by every mempool, and through them every port)
        // is gone, so no DPDK object made through this crate is still in use.
        // A mempool leaked because mbufs were outstanding leaks its handle
        // too, which keeps cleanup from ever running (see Mempool's Drop).
        let rc = unsafe { ffi::rte_eal_cleanup() };
        if rc != 0 {
            log::warn!("dpdk: rte_eal_cleanup failed: {}", super::error::strerror(-rc));
        }
        // The EAL creates it even with --in-memory and leaves it behind
        // (one empty directory per run and file prefix; found by a
        // fresh-user pass). remove_dir only removes an empty one.
        if let Some(d) = &self.runtime_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The initialised EAL. Cloning shares it; `rte_eal_cleanup` runs when the
/// last clone, mempool and port are gone.
#[derive(Clone)]
pub struct Eal {
    _inner: Arc<EalInner>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Eal")
    }
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (`argv[0]` first, as from
    /// [`eal_args`]). Once per process: a second call fails with
    /// [`DpdkError::AlreadyInitialised`].
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        let mut owned = Vec::with_capacity(args.len());
        for a in args {
            owned.push(
                CString::new(a.as_str())
                    .map_err(|_| DpdkError::Invalid(format!("EAL argument with NUL: {a:?}")))?,
            );
        }
        // The EAL may keep pointers into argv (and permutes it), so the
        // strings live for the rest of the process.
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as c_int;
        argv.push(std::ptr::null_mut());
        let argv = Box::leak(argv.into_boxed_slice());
        let claimed = super::signals::claim_tap_rx_signals();
        log::debug!(
            "claimed {claimed} real-time signals so that a net_tap port polls its queues \
             (its 'All rt-signals are in use' warning is expected)"
        );
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL, all leaked so they outlive the EAL; EAL_STARTED guarantees
        // this is the only rte_eal_init call in the process.
        let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        check_errno("rte_eal_init", rc)?;
        Ok(Eal {
            _inner: Arc::new(EalInner { runtime_dir: runtime_dir(args) }),
        })
    }

    /// Removes the EAL's runtime directory if it is empty (with
    /// `--in-memory` it stays empty, and `rte_eal_cleanup` may never run
    /// when a mempool was leaked with mbufs out): one leftover directory
    /// per run and file prefix otherwise.
    pub fn remove_runtime_dir_if_empty(&self) {
        if let Some(d) = &self._inner.runtime_dir {
            let _ = std::fs::remove_dir(d);
        }
    }

    /// The lcore id of the calling thread, `None` for an unregistered
    /// non-EAL thread.
    pub fn current_lcore(&self) -> Option<LcoreId> {
        LcoreId::current()
    }

    /// The NUMA socket of the calling thread (`rte_socket_id`).
    pub fn socket_id(&self) -> u32 {
        // SAFETY: rte_socket_id reads per-thread EAL state; the EAL is up.
        unsafe { ffi::rte_socket_id() }
    }

    /// Registers the calling non-EAL thread with DPDK (`rte_thread_register`)
    /// and returns a guard that unregisters it on drop (on this thread).
    ///
    /// When it is needed: mempool alloc/free work from unregistered threads
    /// (they bypass the per-lcore cache and go to the multi-producer ring),
    /// but anything keyed by `rte_lcore_id()` — mempool caches, per-lcore
    /// tables — needs a real lcore id. Worker threads spawned with
    /// `std::thread` that allocate mbufs on the fast path should register
    /// for the cache; slow-path threads need not.
    pub fn register_thread(&self) -> Result<ThreadRegistration, DpdkError> {
        // SAFETY: the EAL is initialised (we hold a handle).
        let rc = unsafe { ffi::rte_thread_register() };
        check_errno("rte_thread_register", rc)?;
        let lcore = LcoreId::current().ok_or_else(|| {
            DpdkError::Invalid("rte_thread_register gave no lcore id".into())
        })?;
        Ok(ThreadRegistration {
            lcore,
            _eal: self.clone(),
            _not_send: PhantomData,
        })
    }

    pub(crate) fn handle(&self) -> Eal {
        self.clone()
    }
}

/// A registered non-EAL thread; unregisters on drop. Not `Send`: it must
/// be dropped on the thread that registered.
#[derive(Debug)]
pub struct ThreadRegistration {
    lcore: LcoreId,
    _eal: Eal,
    _not_send: PhantomData<*const ()>,
}

impl ThreadRegistration {
    /// The lcore id DPDK gave this thread.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: we are on the thread that registered (the guard is !Send)
        // and the EAL is alive (we hold a handle).
        unsafe { ffi::rte_thread_unregister() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> EalOptions {
        EalOptions {
            cores: vec![0, 1],
            vdevs: vec!["net_null0".into(), "net_tap0,iface=bt0".into()],
            file_prefix: "t1".into(),
            memory_mb: 128,
            no_huge: None,
            in_memory: true,
            no_pci: true,
            log_level: Some("notice".into()),
            driver_paths: vec![],
        }
    }

    #[test]
    fn eal_args_without_hugepages_adds_no_huge_and_memory() {
        let a = eal_args_resolved(&opts(), true);
        let expect: Vec<String> = [
            "baton",
            "-l",
            "0,1",
            "--file-prefix=t1",
            "--no-shconf",
            "--no-huge",
            "-m",
            "128",
            "--no-pci",
            "--no-telemetry",
            "--log-level=notice",
            "--vdev=net_null0",
            "--vdev=net_tap0,iface=bt0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(a, expect);
    }

    #[test]
    fn eal_args_with_hugepages_has_no_no_huge() {
        let a = eal_args_resolved(&opts(), false);
        assert!(!a.iter().any(|s| s == "--no-huge" || s == "-m"));
        assert!(a.iter().any(|s| s == "--in-memory"));
        assert!(a.iter().any(|s| s == "--file-prefix=t1"));
    }

    #[test]
    fn eal_args_forced_no_huge_ignores_host() {
        let mut o = opts();
        o.no_huge = Some(true);
        assert!(eal_args(&o).iter().any(|s| s == "--no-huge"));
        o.no_huge = Some(false);
        assert!(!eal_args(&o).iter().any(|s| s == "--no-huge"));
    }

    #[test]
    fn eal_args_empty_cores_means_core_zero() {
        let mut o = opts();
        o.cores.clear();
        let a = eal_args_resolved(&o, false);
        assert_eq!(&a[1..3], &["-l".to_string(), "0".to_string()]);
    }

    #[test]
    fn free_hugepages_sums_all_sizes_and_tolerates_missing() {
        let dir = std::env::temp_dir().join(format!("baton-hp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, free) in [("hugepages-2048kB", "3\n"), ("hugepages-1048576kB", "1\n")] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("free_hugepages"), free).unwrap();
        }
        std::fs::create_dir_all(dir.join("hugepages-bogus")).unwrap();
        assert_eq!(free_hugepages_in(&dir), 4);
        assert_eq!(free_hugepages_in(&dir.join("nope")), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
