//! The one place where DPDK's C return conventions become `Result`s.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::ptr::NonNull;

use super::ffi;

/// An error from the DPDK layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpdkError {
    /// A DPDK call failed; `code` is a positive errno value and `text`
    /// is `rte_strerror(code)`.
    #[error("{op}: {text} (errno {code})")]
    Call {
        /// The DPDK function that failed.
        op: &'static str,
        /// Positive errno (DPDK returns `-errno` or sets `rte_errno`).
        code: i32,
        /// `rte_strerror(code)`.
        text: String,
    },
    /// The EAL was already initialised in this process (it initialises
    /// once per process; even after cleanup it cannot start again).
    #[error("the DPDK EAL is already initialised in this process")]
    AlreadyInitialised,
    /// An argument was rejected before calling into DPDK.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The resource is busy (e.g. a queue handle is held by a worker).
    #[error("busy: {0}")]
    Busy(String),
    /// The PMD does not support this operation (`-ENOTSUP` / `-EOPNOTSUPP`),
    /// e.g. RSS redirection-table updates on `net_tap` or `net_ring`.
    #[error("{op}: the PMD ({driver}) does not support this")]
    NotSupported {
        /// The DPDK function that was refused.
        op: &'static str,
        /// The port's driver name.
        driver: String,
    },
}

impl DpdkError {
    /// Builds a `Call` error from a positive errno value.
    pub fn from_errno(op: &'static str, code: i32) -> DpdkError {
        DpdkError::Call {
            op,
            code,
            text: strerror(code),
        }
    }

    /// Builds a `Call` error from the calling thread's `rte_errno`.
    pub fn last(op: &'static str) -> DpdkError {
        // SAFETY: shim_rte_errno reads the thread-local rte_errno; no preconditions.
        let code = unsafe { ffi::shim_rte_errno() };
        DpdkError::from_errno(op, code)
    }

    /// The errno value, if this error came from a DPDK call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            DpdkError::Call { code, .. } => Some(*code),
            DpdkError::NotSupported { .. } => Some(libc::ENOTSUP),
            _ => None,
        }
    }
}

/// `rte_strerror` as an owned string.
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a
    // NUL-terminated string (static or thread-local), valid until the next
    // call on this thread; we copy it out at once.
    let p = unsafe { ffi::rte_strerror(code as c_int) };
    if p.is_null() {
        return format!("error {code}");
    }
    // SAFETY: p is non-null and NUL-terminated (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Maps a `0 / positive = ok, -errno = error` return code.
pub(crate) fn check(op: &'static str, ret: c_int) -> Result<u32, DpdkError> {
    if ret < 0 {
        Err(DpdkError::from_errno(op, -ret))
    } else {
        Ok(ret as u32)
    }
}

/// Maps a `-1 + rte_errno` return code (EAL style).
pub(crate) fn check_errno(op: &'static str, ret: c_int) -> Result<u32, DpdkError> {
    if ret < 0 {
        Err(DpdkError::last(op))
    } else {
        Ok(ret as u32)
    }
}

/// Maps a `NULL + rte_errno` pointer return.
pub(crate) fn check_ptr<T>(op: &'static str, p: *mut T) -> Result<NonNull<T>, DpdkError> {
    NonNull::new(p).ok_or_else(|| DpdkError::last(op))
}
