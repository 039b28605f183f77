//! What one stream may take: how many streams may be open (all clients together and per
//! credential), how long a stream may sit idle, and when its connection's age ends it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::Status;

/// How long after its connection's GOAWAY (`PROXY_MAX_CONNECTION_AGE_SECS`) a stream ends.
pub const AGE_MARGIN: Duration = Duration::from_secs(1);

/// The configured limits and the streams open now.
#[derive(Default)]
pub struct Limits {
    /// `PROXY_MAX_STREAMS` (0 = none).
    pub max_streams: usize,
    /// `PROXY_MAX_STREAMS_PER_KEY` (0 = none).
    pub max_per_key: usize,
    /// `PROXY_STREAM_IDLE_SECS`.
    pub idle: Option<Duration>,
    /// `PROXY_MAX_CONNECTION_AGE_SECS`.
    pub max_age: Option<Duration>,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// A stream's place under the limits; given back on drop.
pub struct Slot {
    limits: Arc<Limits>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limits.open.lock() {
            open.0 = open.0.saturating_sub(1);
            if let Some(n) = open.1.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    open.1.remove(&self.key);
                }
            }
        }
    }
}

impl Limits {
    /// Limits with no stream open yet.
    pub fn new(
        max_streams: usize,
        max_per_key: usize,
        idle: Option<Duration>,
        max_age: Option<Duration>,
    ) -> Limits {
        Limits {
            max_streams,
            max_per_key,
            idle,
            max_age,
            open: Mutex::default(),
        }
    }

    /// Admits one more stream for credential `key`, or says which limit refuses it (the label
    /// for the metric, and the status for the client).
    pub fn admit(self: &Arc<Self>, key: &str) -> Result<Slot, (&'static str, Status)> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_streams > 0 && open.0 >= self.max_streams {
            return Err((
                "PROXY_MAX_STREAMS",
                Status::resource_exhausted(format!(
                    "the proxy holds its limit of {} open streams (PROXY_MAX_STREAMS); retry later \
                     or use another replica",
                    self.max_streams
                )),
            ));
        }
        let mine = open.1.get(key).copied().unwrap_or(0);
        if self.max_per_key > 0 && mine >= self.max_per_key {
            return Err((
                "PROXY_MAX_STREAMS_PER_KEY",
                Status::resource_exhausted(format!(
                    "this credential already has {mine} open streams, the limit per key \
                     (PROXY_MAX_STREAMS_PER_KEY={}); close one first",
                    self.max_per_key
                )),
            ));
        }
        open.0 += 1;
        *open.1.entry(key.to_string()).or_default() += 1;
        Ok(Slot {
            limits: self.clone(),
            key: key.to_string(),
        })
    }

    /// When a stream on a connection accepted at `born` stops taking packets: [`AGE_MARGIN`]
    /// after the connection's GOAWAY, so that the client's next stream goes to a new connection.
    pub fn age_end(&self, born: std::time::Instant) -> Option<tokio::time::Instant> {
        self.max_age
            .map(|age| tokio::time::Instant::from_std(born + age + AGE_MARGIN))
    }

    /// Streams open now (all credentials).
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.0).unwrap_or(0)
    }
}

/// When a stream last did something, and how many of its packets are in flight.
pub struct Activity {
    last: Mutex<tokio::time::Instant>,
    inflight: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            last: Mutex::new(tokio::time::Instant::now()),
            inflight: AtomicUsize::new(0),
        }
    }
}

impl Activity {
    pub fn packet_in(&self) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.touch();
    }

    pub fn ack_out(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        self.touch();
    }

    fn touch(&self) {
        if let Ok(mut l) = self.last.lock() {
            *l = tokio::time::Instant::now();
        }
    }

    /// Resolves once the stream has had nothing in flight and received nothing for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self
                .last
                .lock()
                .map(|l| *l)
                .unwrap_or_else(|_| tokio::time::Instant::now());
            let quiet = last.elapsed();
            if quiet >= idle && self.inflight.load(Ordering::Acquire) == 0 {
                return;
            }
            // Something is in flight: look again after one more period of quiet.
            let wait = if quiet >= idle { idle } else { idle - quiet };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

/// Why the proxy stops taking packets on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Shutdown: the stream ends with OK after the owed Acks.
    Drain,
    /// `PROXY_STREAM_IDLE_SECS`.
    Idle,
    /// `PROXY_MAX_CONNECTION_AGE_SECS`.
    Age,
    /// The stream's key was removed from `PROXY_KEYS_FILE`.
    Revoked,
}

impl End {
    /// The metric label; `None` for the shutdown drain (not counted there).
    pub fn label(self) -> Option<&'static str> {
        match self {
            End::Drain => None,
            End::Idle => Some("idle"),
            End::Age => Some("max_connection_age"),
            End::Revoked => Some("key_revoked"),
        }
    }

    /// The status that ends the stream after the owed Acks; `None`: OK.
    pub fn status(self, limits: &Limits) -> Option<Status> {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs()).unwrap_or(0);
        match self {
            End::Drain => None,
            End::Idle => Some(Status::unavailable(format!(
                "the stream sent nothing for {} s (PROXY_STREAM_IDLE_SECS); open a new stream to \
                 continue",
                secs(limits.idle)
            ))),
            End::Age => Some(Status::unavailable(format!(
                "the connection reached its maximum age of {} s (PROXY_MAX_CONNECTION_AGE_SECS, so \
                 that clients spread across replicas); every packet before this status was \
                 answered: reconnect and send the rest",
                secs(limits.max_age)
            ))),
            End::Revoked => Some(Status::unauthenticated(
                "key revoked: the key this stream was opened with is no longer in \
                 PROXY_KEYS_FILE; every packet before this status was answered",
            )),
        }
    }
}

/// Resolves when the stream must stop taking packets, and says why.
pub async fn stop(
    mut draining: watch::Receiver<bool>,
    activity: Arc<Activity>,
    idle: Option<Duration>,
    age_deadline: Option<tokio::time::Instant>,
) -> End {
    let idle = async {
        match idle {
            Some(d) => activity.idle_for(d).await,
            None => std::future::pending().await,
        }
    };
    let age = async {
        match age_deadline {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = draining.wait_for(|d| *d) => End::Drain,
        _ = idle => End::Idle,
        _ = age => End::Age,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_admitted_up_to_each_limit_and_given_back_on_drop() {
        let l = Arc::new(Limits {
            max_streams: 3,
            max_per_key: 2,
            ..Default::default()
        });
        let a1 = l.admit("a").unwrap();
        let a2 = l.admit("a").unwrap();
        let (limit, status) = l.admit("a").err().unwrap();
        assert_eq!(limit, "PROXY_MAX_STREAMS_PER_KEY");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("PROXY_MAX_STREAMS_PER_KEY=2"));
        let b1 = l.admit("b").unwrap();
        let (limit, status) = l.admit("c").err().unwrap();
        assert_eq!(limit, "PROXY_MAX_STREAMS");
        assert!(status.message().contains("limit of 3 open streams"));
        assert_eq!(l.open(), 3);
        drop(a1);
        assert_eq!(l.open(), 2);
        let _a3 = l.admit("a").unwrap();
        drop((a2, b1));
        assert_eq!(l.open(), 1);
        let none = Arc::new(Limits::default());
        let many: Vec<_> = (0..100).map(|_| none.admit("k").unwrap()).collect();
        assert_eq!(none.open(), many.len());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_only_time_with_nothing_in_flight() {
        let a = Arc::new(Activity::default());
        a.packet_in();
        let t0 = tokio::time::Instant::now();
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.idle_for(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert!(!waiter.is_finished(), "a packet in flight is not idleness");
        a.ack_out();
        let done_at = loop {
            if waiter.is_finished() {
                break tokio::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let after_ack = done_at - t0 - Duration::from_secs(12);
        assert!(
            after_ack >= Duration::from_secs(5) && after_ack < Duration::from_secs(6),
            "{after_ack:?}"
        );
    }

    #[test]
    fn end_statuses_name_their_setting() {
        let l = Limits {
            idle: Some(Duration::from_secs(7)),
            max_age: Some(Duration::from_secs(9)),
            ..Default::default()
        };
        assert!(End::Drain.status(&l).is_none());
        let s = End::Idle.status(&l).unwrap();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("7 s (PROXY_STREAM_IDLE_SECS)"));
        let s = End::Age.status(&l).unwrap();
        assert!(s.message().contains("9 s (PROXY_MAX_CONNECTION_AGE_SECS"));
        assert_eq!(End::Age.label(), Some("max_connection_age"));
    }
}
