//! The bridge between GStreamer's threads and the async [`triton_client`]: the process-wide
//! tokio runtime of every `tritoninfer`, and blocking calls that are bounded in time and that a
//! state change or a flush can cancel (a streaming thread must never wait on the network with no
//! way out, nor hold the element's state lock while it waits).
//!
//! The runtime is a good guest.
//! A plugin lives in someone else's process. A write on a socket whose peer has gone (a proxy
//! or Triton restarting, `writev` on a closed connection) raises SIGPIPE, whose default action
//! kills the process: a Rust host ignores SIGPIPE from its start, but `gst-launch-1.0` and most
//! C and C++ applications leave the default. Every socket write of ours happens on this
//! runtime's threads (the gRPC connections are tasks spawned here), and a SIGPIPE raised by a
//! write goes to the thread that wrote. So each runtime thread blocks SIGPIPE as it starts: the
//! write then fails with EPIPE, which the gRPC stack handles as a closed connection, and the
//! host's own disposition of SIGPIPE is left as the host set it.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::watch;
use triton_client::shm::ShmPool;
use triton_client::{ClientConfig, InferError};

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

/// Cancels the element's blocking calls: set on a flush and on PAUSED→READY, cleared when the
/// element may wait on the network again.
pub struct Cancel(watch::Sender<bool>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(watch::channel(false).0)
    }
}

impl Cancel {
    /// Ends the calls waiting now and refuses new ones until [`Cancel::clear`].
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn clear(&self) {
        self.0.send_replace(false);
    }
}

/// How a blocking call ended.
#[derive(Debug, PartialEq)]
pub enum Blocked<T> {
    Done(T),
    TimedOut,
    Cancelled,
}

/// Runs `fut` on the runtime and waits for it, at most `limit`, and no longer than until
/// `cancel` is set.
pub fn bounded<F: Future>(cancel: &Cancel, limit: Duration, fut: F) -> Blocked<F::Output> {
    let mut cancelled = cancel.0.subscribe();
    RUNTIME.block_on(async move {
        tokio::select! {
            biased;
            _ = cancelled.wait_for(|c| *c) => Blocked::Cancelled,
            r = tokio::time::timeout(limit, fut) => match r {
                Ok(v) => Blocked::Done(v),
                Err(_) => Blocked::TimedOut,
            },
        }
    })
}

/// [`ShmPool::prepare`] at start, within 5 s. `Err`: a refusal, the element must not start;
/// `Ok(Err)`: not checked (server unreachable: the first request tries again); `Ok(Ok)`: the
/// leftovers removed.
pub fn prepare_shm(
    cancel: &Cancel,
    pool: Arc<ShmPool>,
) -> Result<Result<Vec<String>, String>, String> {
    match bounded(cancel, Duration::from_secs(5), pool.prepare()) {
        Blocked::Done(Ok(gone)) => Ok(Ok(gone)),
        Blocked::Done(Err(e @ InferError::SharedMemory(_))) => Err(e.to_string()),
        Blocked::Done(Err(e)) => Ok(Err(e.to_string())),
        Blocked::TimedOut => Ok(Err("no answer within 5 s".into())),
        Blocked::Cancelled => Ok(Err("cancelled".into())),
    }
}

/// [`ShmPool::close`] at stop, within 3 s, when the client has a pool. Not cancellable: it runs
/// after the element's calls were cancelled, and it is what gives the regions back.
pub fn close_shm(cfg: &ClientConfig) -> Result<(), String> {
    let Some(pool) = cfg.shm.clone() else {
        return Ok(());
    };
    match bounded(&Cancel::default(), Duration::from_secs(3), pool.close()) {
        Blocked::Done(r) => r.map_err(|e| e.to_string()),
        _ => Err("Triton did not answer within 3 s".into()),
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

    /// A call that would wait forever returns when it is cancelled from another thread, and a
    /// cancelled element refuses new calls until cleared; a slow call ends at its limit.
    #[test]
    fn a_blocking_call_ends_at_its_limit_or_when_cancelled() {
        let never = std::future::pending::<()>;
        let cancel = Arc::new(Cancel::default());
        let c = cancel.clone();
        let t = std::thread::spawn(move || bounded(&c, Duration::from_secs(3600), never()));
        // The call is waiting once it listens for the cancellation.
        while cancel.0.receiver_count() == 0 {
            std::thread::yield_now();
        }
        cancel.cancel();
        assert_eq!(t.join().unwrap(), Blocked::Cancelled);
        assert_eq!(
            bounded(&cancel, Duration::from_secs(3600), async { 1 }),
            Blocked::Cancelled,
            "a cancelled element must not start a new call"
        );
        cancel.clear();
        assert_eq!(
            bounded(&cancel, Duration::from_secs(1), async { 1 }),
            Blocked::Done(1)
        );
        assert_eq!(
            bounded(&cancel, Duration::from_millis(20), never()),
            Blocked::TimedOut
        );
    }
}
