//! `PROXY_MAX_BUFFERED_BYTES`: one budget for the client bytes the proxy holds, across all
//! streams. A message is counted from its gRPC header on (before its body is buffered) until its
//! Ack is written; a stream whose next message does not fit ends with `RESOURCE_EXHAUSTED`, so
//! that no number of streams, keys or in-flight packets can hold more than the budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// Bytes are counted in KiB (a semaphore takes at most `u32::MAX` permits at once).
const UNIT: u64 = 1024;

/// The budget when nothing sets it and no cgroup limits the process's memory.
pub const FALLBACK: u64 = 2 << 30;

/// The shared budget. One credential may hold at most half of it, so that the streams of one
/// key (or one stolen key) cannot leave the others nothing.
#[derive(Clone)]
pub struct Budget(Arc<Shared>);

struct Shared {
    sem: Arc<Semaphore>,
    units: u64,
    /// The most units one credential may hold.
    key_units: u64,
    /// Units held per credential label.
    per_key: Mutex<HashMap<Arc<str>, u64>>,
}

/// Bytes held against the budget, given back on drop.
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
    key: Option<(Budget, Arc<str>, u64)>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = self.key.as_ref().map_or(0, |k| k.2);
        write!(f, "Held({} bytes)", units * UNIT)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((b, key, units)) = self.key.take() {
            let mut per = b.0.per_key.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = per.get_mut(&key) {
                *n = n.saturating_sub(units);
                if *n == 0 {
                    per.remove(&key);
                }
            }
        }
    }
}

impl Budget {
    /// A budget of `bytes` (at least two KiB).
    pub fn new(bytes: u64) -> Budget {
        let units = (bytes / UNIT).clamp(2, Semaphore::MAX_PERMITS as u64);
        Budget(Arc::new(Shared {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
            key_units: units / 2,
            per_key: Mutex::default(),
        }))
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        self.0.units * UNIT
    }

    /// Bytes held now, all streams.
    pub fn held(&self) -> u64 {
        (self.0.units - self.0.sem.available_permits() as u64) * UNIT
    }

    /// Holds room for a message of `bytes` from a stream of credential `key` (its label, never
    /// the secret), or says why not (the stream then ends).
    pub fn hold(&self, key: &Arc<str>, bytes: usize) -> Result<Held, Status> {
        let units = (bytes as u64).div_ceil(UNIT);
        if units == 0 {
            return Ok(Held {
                _permit: None,
                key: None,
            });
        }
        let mut per = self.0.per_key.lock().unwrap_or_else(|e| e.into_inner());
        let mine = per.get(&**key).copied().unwrap_or(0);
        if mine + units > self.0.key_units {
            return Err(Status::resource_exhausted(format!(
                "the streams of this credential hold {} bytes and a message of {bytes} bytes would                  pass its share, half of the proxy's {} bytes (PROXY_MAX_BUFFERED_BYTES); retry on                  a new stream once its packets are answered",
                mine * UNIT,
                self.bytes()
            )));
        }
        let permit = u32::try_from(units)
            .ok()
            .and_then(|u| self.0.sem.clone().try_acquire_many_owned(u).ok())
            .ok_or_else(|| {
                Status::resource_exhausted(format!(
                    "the proxy holds {} of its {} bytes for other packets \
                     (PROXY_MAX_BUFFERED_BYTES) and a message of {bytes} bytes does not fit; \
                     retry on a new stream after a moment",
                    self.held(),
                    self.bytes()
                ))
            })?;
        *per.entry(key.clone()).or_default() += units;
        Ok(Held {
            _permit: Some(permit),
            key: Some((self.clone(), key.clone(), units)),
        })
    }
}

/// The default budget: half the memory limit of the process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), leaving the rest for the answers, the connections and the
/// allocator's kept memory; [`FALLBACK`] when no limit is set.
pub fn default_bytes() -> u64 {
    cgroup_limit(|p| std::fs::read_to_string(p).ok()).map_or(FALLBACK, |l| l / 2)
}

/// The memory limit the cgroup files `read` returns name, if any.
fn cgroup_limit(read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let value = |p: &str| read(p).and_then(|t| t.trim().parse::<u64>().ok());
    // v2: "max" (no limit) does not parse. v1: no limit reads as a huge page-rounded number.
    value("/sys/fs/cgroup/memory.max")
        .or_else(|| value("/sys/fs/cgroup/memory/memory.limit_in_bytes").filter(|&l| l < 1 << 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_held_until_dropped_and_refused_past_the_budget() {
        let b = Budget::new(20 << 20);
        let first = b.hold(&"a".into(), 6 << 20).unwrap();
        assert_eq!(b.held(), 6 << 20);
        let e = b.hold(&"a".into(), 5 << 20).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(
            e.message().contains("PROXY_MAX_BUFFERED_BYTES") && e.message().contains("half"),
            "one key: half the budget at most: {e:?}"
        );
        let other = b.hold(&"b".into(), 10 << 20).unwrap();
        let e = b.hold(&"c".into(), 5 << 20).unwrap_err();
        assert!(
            e.message().contains("holds 16777216 of its 20971520 bytes"),
            "the budget as a whole: {e:?}"
        );
        let small = b.hold(&"c".into(), 1000).unwrap();
        drop(first);
        assert_eq!(b.held(), (10 << 20) + 1024, "a part of a KiB counts as one");
        assert!(b.hold(&"a".into(), 9 << 20).is_ok(), "a's share came back");
        drop((other, small));
        assert_eq!(b.held(), 0);
        assert!(b.hold(&"a".into(), 0).is_ok());
        assert!(
            b.hold(&"a".into(), usize::MAX).is_err(),
            "more than can be counted"
        );
        assert!(
            b.0.per_key.lock().unwrap().is_empty(),
            "nothing left per key"
        );
    }

    #[test]
    fn the_default_is_half_the_cgroup_limit() {
        let files = |v2: Option<&str>, v1: Option<&str>| {
            let (v2, v1) = (v2.map(String::from), v1.map(String::from));
            move |p: &str| {
                if p.ends_with("memory.max") {
                    v2.clone()
                } else {
                    v1.clone()
                }
            }
        };
        assert_eq!(
            cgroup_limit(files(Some("1073741824\n"), None)),
            Some(1 << 30)
        );
        assert_eq!(cgroup_limit(files(Some("max\n"), None)), None);
        assert_eq!(cgroup_limit(files(None, Some("536870912"))), Some(1 << 29));
        assert_eq!(
            cgroup_limit(files(None, Some("9223372036854771712"))),
            None,
            "v1's no-limit value"
        );
        assert_eq!(cgroup_limit(files(None, None)), None);
    }
}
