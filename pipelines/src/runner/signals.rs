//! The runner's signals. SIGINT and SIGTERM (Ctrl-C, `podman stop`, systemd, Kubernetes) ask for
//! a graceful end: the files are finished first; a second one aborts at once (exit 130).
//! SIGHUP asks a `--cameras` run to read its cameras file again.
//!
//! The handlers only touch atomics (async-signal-safe); the run loops poll them.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static STOPS: AtomicU32 = AtomicU32::new(0);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    if STOPS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

extern "C" fn on_hup(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

/// Installs the SIGHUP handler alone (a `--cameras` run, before its preflight: a SIGHUP then
/// asks for a reload instead of ending the process; SIGINT and SIGTERM still end it at once).
pub fn install_reload() {
    let hup = on_hup as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: a plain handler that only touches an atomic.
    unsafe {
        libc::signal(libc::SIGHUP, hup);
    }
}

/// Installs the handlers; SIGHUP only when `reload` (otherwise it keeps its default).
pub fn install(reload: bool) {
    let stop = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: plain handlers that only touch atomics, installed before the run starts.
    unsafe {
        libc::signal(libc::SIGINT, stop);
        libc::signal(libc::SIGTERM, stop);
        if reload {
            let hup = on_hup as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(libc::SIGHUP, hup);
        }
    }
}

/// Whether a graceful stop was asked for.
pub fn stop_requested() -> bool {
    STOPS.load(Ordering::SeqCst) > 0
}

/// Asks for a reload as SIGHUP does (the API, after it wrote the cameras file).
pub fn request_reload() {
    RELOAD.store(true, Ordering::SeqCst);
}

/// Whether SIGHUP (or [`request_reload`]) came since the last call.
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighup_asks_for_one_reload_and_is_no_stop() {
        install(true);
        assert!(!take_reload());
        // SAFETY: raise runs our handler on this thread before it returns.
        unsafe { libc::raise(libc::SIGHUP) };
        assert!(take_reload(), "SIGHUP asks for a reload");
        assert!(!take_reload(), "taken once");
        assert!(!stop_requested(), "SIGHUP is no stop");
    }
}
