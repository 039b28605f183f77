//! How the C allocator treats the proxy's large buffers.
//!
//! Every frame brings buffers of several MB: HTTP/2 read buffers holding the tensor, the base64
//! text of an Ack. glibc's malloc serves such sizes with a fresh `mmap` and returns them with
//! `munmap` on free (or trims them off its heap), so each frame's buffers are faulted in and
//! zeroed by the kernel again: measured, a fifth of the proxy's CPU went to page faults, and base64
//! Acks cost nearly twice as much as with the memory kept. The proxy therefore keeps freed
//! memory for reuse — large blocks come from the heap (below 64 MiB) and up to 256 MiB of free
//! heap stays mapped — unless the glibc variables `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`
//! say otherwise. The resident size stays near the peak of the buffers in use instead of
//! dropping between frames.

/// Blocks below this come from the heap, not a mapping of their own.
pub const MMAP_THRESHOLD: usize = 64 << 20;
/// Free memory at the top of a heap kept mapped for the next buffers.
pub const TRIM_THRESHOLD: usize = 256 << 20;

/// Applies the thresholds above (once, at start, before the runtime's threads), except where the
/// environment sets glibc's own variables. Returns whether it set them.
pub fn keep_freed_memory() -> bool {
    ours_to_set(|k| std::env::var_os(k).is_some()) && set(MMAP_THRESHOLD, TRIM_THRESHOLD)
}

/// Whether the thresholds are ours to set: not when glibc's own variables are in the
/// environment (`is_set` tells which are), which the operator chose.
fn ours_to_set(is_set: impl Fn(&str) -> bool) -> bool {
    !(is_set("MALLOC_MMAP_THRESHOLD_") || is_set("MALLOC_TRIM_THRESHOLD_"))
}

#[cfg(target_env = "gnu")]
fn set(mmap: usize, trim: usize) -> bool {
    let c = |v: usize| libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only changes the allocator's parameters; any value is accepted or refused.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, c(mmap)) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, c(trim)) == 1
    }
}

#[cfg(not(target_env = "gnu"))]
fn set(_: usize, _: usize) -> bool {
    false
}

#[cfg(all(test, target_env = "gnu"))]
mod tests {
    /// Minor page faults of this thread.
    fn faults() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut u);
            u.ru_minflt
        }
    }

    /// Page faults of rounds of four streams' buffers at once (each a 4.9 MB tensor, its 6.5 MB
    /// base64 text, a 1 MiB read buffer), written, then freed, after two rounds to settle.
    fn faults_of_frames() -> i64 {
        let round = || {
            let held: Vec<Vec<u8>> = (0..4)
                .flat_map(|_| [4_915_200usize, 6_553_600, 1 << 20])
                .map(|n| vec![1u8; n])
                .collect();
            std::hint::black_box(&held);
        };
        round();
        round();
        let f0 = faults();
        for _ in 0..5 {
            round();
        }
        faults() - f0
    }

    #[test]
    fn a_frames_buffers_are_not_faulted_in_again_once_memory_is_kept() {
        // A thread of its own: the test runner's other threads do not share its counters.
        let before = std::thread::spawn(faults_of_frames).join().unwrap();
        assert!(super::set(super::MMAP_THRESHOLD, super::TRIM_THRESHOLD));
        let after = std::thread::spawn(faults_of_frames).join().unwrap();
        // 5 rounds of 4 × 12.4 MB are ~61 000 pages when every buffer is mapped afresh (measured:
        // 60 960 before, 0 after).
        assert!(
            after < 500,
            "{after} page faults over 5 rounds with memory kept ({before} before)"
        );
    }
}

#[cfg(test)]
mod choice {
    #[test]
    fn glibcs_own_variables_win_over_ours() {
        assert!(super::ours_to_set(|_| false), "nothing set: ours apply");
        for k in ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"] {
            assert!(!super::ours_to_set(|v| v == k), "{k} set: left alone");
        }
    }
}
