//! The process-wide tokio runtime of every `tritoninfer`, and what it does to be a good guest.
//!
//! A plugin lives in someone else's process. A write on a socket whose peer has gone (a proxy
//! or Triton restarting, `writev` on a closed connection) raises SIGPIPE, whose default action
//! kills the process: a Rust host ignores SIGPIPE from its start, but `gst-launch-1.0` and most
//! C and C++ applications leave the default. Every socket write of ours happens on this
//! runtime's threads (the gRPC connections are tasks spawned here), and a SIGPIPE raised by a
//! write goes to the thread that wrote. So each runtime thread blocks SIGPIPE as it starts: the
//! write then fails with EPIPE, which the gRPC stack handles as a closed connection, and the
//! host's own disposition of SIGPIPE is left as the host set it.

use std::sync::LazyLock;

/// The runtime of all `tritoninfer` instances.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tritoninfer-rt")
        .on_thread_start(block_sigpipe)
        .enable_all()
        .build()
        .expect("tokio runtime for tritoninfer")
});

/// Blocks SIGPIPE in the calling thread (a pending one stays pending and harmless).
pub fn block_sigpipe() {
    // SAFETY: plain calls on a local, zero-initialised signal set; pthread_sigmask changes only
    // the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Whether SIGPIPE is blocked in the calling thread.
#[cfg(test)]
fn sigpipe_blocked() -> bool {
    // SAFETY: reads the calling thread's mask into a local set.
    unsafe {
        let mut cur: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
        libc::sigismember(&cur, libc::SIGPIPE) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thread the runtime runs our tasks and blocking work on has SIGPIPE blocked, and
    /// the thread that built the runtime (the host's) is left as it was.
    #[test]
    fn runtime_threads_block_sigpipe_and_the_host_thread_is_untouched() {
        let host_before = std::thread::spawn(|| {
            let _ = &*RUNTIME;
            sigpipe_blocked()
        })
        .join()
        .unwrap();
        assert!(!host_before, "the host thread's mask was changed");
        for _ in 0..8 {
            let on_worker = RUNTIME.block_on(RUNTIME.spawn(async { sigpipe_blocked() }));
            assert!(on_worker.unwrap(), "a worker thread lets SIGPIPE through");
        }
        let blocking = RUNTIME.block_on(RUNTIME.spawn_blocking(sigpipe_blocked));
        assert!(
            blocking.unwrap(),
            "a blocking-pool thread lets SIGPIPE through"
        );
    }

    /// The mechanism itself: with SIGPIPE at its default action (as in a C host), a vectored
    /// write on a socket whose peer is gone, made from a runtime thread, returns EPIPE and the
    /// process lives. Run in a child process so the default action cannot take the test
    /// harness down with it; the child's exit status tells.
    #[test]
    fn a_write_on_a_closed_socket_from_a_runtime_thread_returns_epipe_under_the_default_action() {
        // SAFETY: fork in a test; the child only makes raw syscalls, uses a fresh runtime
        // thread via std, and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                let mut fds = [0; 2];
                libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr());
                libc::close(fds[1]);
                let fd = fds[0];
                let t = std::thread::spawn(move || {
                    block_sigpipe();
                    let byte = [1u8; 16];
                    let iov = libc::iovec {
                        iov_base: byte.as_ptr() as *mut _,
                        iov_len: byte.len(),
                    };
                    let n = libc::writev(fd, &iov, 1);
                    (n, std::io::Error::last_os_error().raw_os_error())
                });
                match t.join() {
                    Ok((-1, Some(libc::EPIPE))) => 0,
                    _ => 3,
                }
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child died or the write did not fail with EPIPE (status {status:#x})"
        );
    }
}
