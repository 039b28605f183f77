//! POSIX shared-memory regions for `shared-memory=system`: creating, mapping, naming and
//! finding the leftovers of processes that died. The Triton side (registering, the pool of
//! regions, requests) is in [`super::pool`].
//!
//! A region is named `gsttriton-<pid>-<start time>-<n>` (the same name in `/dev/shm` and in
//! Triton's region manager): the pid and its start time (field 22 of `/proc/<pid>/stat`) say
//! whether the owner still runs, so a later start removes what a killed process left.

use std::ffi::CString;
use std::io;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// What every region name starts with.
pub const PREFIX: &str = "gsttriton-";

/// This process: `(pid, start time in clock ticks since boot)`.
static OWNER: LazyLock<(u32, u64)> = LazyLock::new(|| {
    let pid = std::process::id();
    (pid, start_time(pid).unwrap_or(0))
});
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A process's start time, or `None` when no such process runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and ')': fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A new region name owned by this process.
pub fn new_name() -> String {
    let (pid, start) = *OWNER;
    format!(
        "{PREFIX}{pid}-{start}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `(pid, start time)` of a name made by [`new_name`], `None` for any other name.
fn owner_of(name: &str) -> Option<(u32, u64)> {
    let mut it = name.strip_prefix(PREFIX)?.split('-');
    let pid = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    it.next()?.parse::<u64>().ok()?;
    it.next().is_none().then_some((pid, start))
}

/// Whether `name` is one of ours whose process no longer runs (a pid reused by another process
/// has another start time).
pub fn is_stale(name: &str) -> bool {
    owner_of(name).is_some_and(|(pid, start)| start_time(pid) != Some(start))
}

/// Removes `/dev/shm` objects left by dead processes; returns their names.
pub fn remove_stale_local() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return vec![];
    };
    let mut removed = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_stale(&name) && unlink(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}

fn c_key(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn unlink(name: &str) -> io::Result<()> {
    let key = c_key(name)?;
    // SAFETY: a valid NUL-terminated name.
    if unsafe { libc::shm_unlink(key.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One shared-memory object, mapped read-write; unmapped and unlinked on drop.
pub struct Region {
    name: String,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; every access copies through
// bounds-checked methods, and a region is used by one request at a time (the pool hands it out).
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Creates `/dev/shm/<name>` of `len` bytes, readable and writable by this user only.
    pub fn create(name: &str, len: usize) -> io::Result<Region> {
        let key = c_key(name)?;
        let len = len.max(1);
        // SAFETY: plain libc calls on a valid name; every failure is checked, the descriptor is
        // closed on every path (the mapping outlives it).
        unsafe {
            let fd = libc::shm_open(
                key.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fail = |fd| {
                let e = io::Error::last_os_error();
                libc::close(fd);
                libc::shm_unlink(key.as_ptr());
                e
            };
            if libc::ftruncate(fd, len as libc::off_t) != 0 {
                return Err(fail(fd));
            }
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            if ptr == libc::MAP_FAILED {
                return Err(fail(fd));
            }
            libc::close(fd);
            Ok(Region {
                name: name.to_string(),
                ptr: ptr.cast(),
                len,
            })
        }
    }

    /// The name (Triton's region name; the key is `/` + name).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key(&self) -> String {
        format!("/{}", self.name)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `data` to `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len())?;
        // SAFETY: in bounds (checked); the source is a separate allocation.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(offset), data.len()) };
        Ok(())
    }

    /// Copies `len` bytes from `offset`.
    pub fn read(&self, offset: usize, len: usize) -> io::Result<Vec<u8>> {
        self.check(offset, len)?;
        // SAFETY: in bounds (checked); the mapping lives as long as `self`.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) }.to_vec())
    }

    fn check(&self, offset: usize, len: usize) -> io::Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes at offset {offset} do not fit region {} of {} bytes",
                    self.name, self.len
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
        let _ = unlink(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(name: &str) -> bool {
        std::path::Path::new("/dev/shm").join(name).exists()
    }

    #[test]
    fn a_region_round_trips_bytes_and_is_unlinked_on_drop() {
        let name = new_name();
        let r = Region::create(&name, 64).unwrap();
        assert!(exists(&name));
        assert_eq!(r.key(), format!("/{name}"));
        r.write(10, &[1, 2, 3]).unwrap();
        assert_eq!(r.read(9, 5).unwrap(), vec![0, 1, 2, 3, 0]);
        assert!(r.write(62, &[1, 2, 3]).is_err());
        assert!(r.read(usize::MAX, 2).is_err());
        // A second region of the same name is refused (O_EXCL).
        assert!(Region::create(&name, 64).is_err());
        drop(r);
        assert!(!exists(&name));
    }

    #[test]
    fn names_say_whose_they_are() {
        let name = new_name();
        assert_eq!(owner_of(&name), Some(*OWNER));
        assert!(!is_stale(&name), "{name}");
        assert_ne!(new_name(), name);
        let (pid, start) = *OWNER;
        // Same pid, other start time: a reused pid, so the owner is gone.
        let reused = format!("{PREFIX}{pid}-{}-0", start + 1);
        assert!(is_stale(&reused));
        // No such process (pid_max is at most 2^22).
        assert!(is_stale(&format!("{PREFIX}{}-1-0", 1u32 << 23)));
        for other in [
            "triton_python_backend_shm_region_1",
            "gsttriton-",
            "gsttriton-1-2",
            "gsttriton-1-2-x",
            "gsttriton-1-2-3-4",
            "gsttriton-x-2-3",
        ] {
            assert!(!is_stale(other) && owner_of(other).is_none(), "{other}");
        }
    }

    #[test]
    fn stale_local_regions_are_removed_and_live_ones_kept() {
        let dead = format!("{PREFIX}{}-1-0", 1u32 << 23);
        let stale = Region::create(&dead, 16).unwrap();
        std::mem::forget(stale); // as a killed process would leave it
        let live = Region::create(&new_name(), 16).unwrap();
        let removed = remove_stale_local();
        assert!(removed.contains(&dead), "{removed:?}");
        assert!(!exists(&dead));
        assert!(exists(live.name()));
    }
}
