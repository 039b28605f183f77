//! The run's event stream (`GET /api/events`, Server-Sent Events): each camera's state changes,
//! numbered once per run, sent to every subscriber as they happen. A subscriber that falls more
//! than [`BACKLOG`] events behind misses the oldest (told by a gap in the ids), never the run.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

/// Where a camera is (`GET /api/cameras/{name}`'s `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Its pipeline is being started, or waits to be started again.
    #[default]
    Starting,
    /// Frames arrive.
    Streaming,
    /// The camera is away: black frames marked no-signal (or none, with on-outage=pause).
    NoSignal,
    /// Its pipeline failed (`last_error`); it is started again after a few seconds.
    Failed,
    /// The camera stayed away past `give_up_secs`; stopped until its entry changes.
    GivenUp,
    /// Its input ended (a file); stopped until its entry changes.
    Stopped,
}

impl Phase {
    /// Started, or settled where it will stay until something changes (`/readyz`).
    pub fn settled(self) -> bool {
        self != Phase::Starting
    }
}

/// Events kept for a slow subscriber.
pub const BACKLOG: usize = 1024;

/// One event.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Event {
    /// 1, 2, 3, ... in the order they happened.
    pub id: u64,
    /// `state` (a camera entered `state`) or `removed` (it left the cameras file and stopped).
    pub kind: &'static str,
    pub camera: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Phase>,
    /// RFC 3339 UTC.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Events {
    tx: broadcast::Sender<Event>,
    next: AtomicU64,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            tx: broadcast::channel(BACKLOG).0,
            next: AtomicU64::new(1),
        }
    }
}

impl Events {
    fn send(&self, kind: &'static str, camera: &str, state: Option<Phase>, error: Option<String>) {
        let e = Event {
            id: self.next.fetch_add(1, Ordering::SeqCst),
            kind,
            camera: camera.to_string(),
            state,
            at: gsttriton::jsonsink::rfc3339(std::time::SystemTime::now()),
            error,
        };
        // No subscriber: nobody to tell.
        let _ = self.tx.send(e);
    }

    /// `camera` entered `state`.
    pub fn state(&self, camera: &str, state: Phase, error: Option<String>) {
        self.send("state", camera, Some(state), error);
    }

    /// `camera` left the file and has stopped.
    pub fn removed(&self, camera: &str) {
        self.send("removed", camera, None, None);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_each_event_once_in_order() {
        let ev = Events::default();
        ev.state("nobody-listens", Phase::Starting, None);
        let (mut a, mut b) = (ev.subscribe(), ev.subscribe());
        ev.state("door", Phase::Streaming, None);
        ev.state("door", Phase::Failed, Some("gone".into()));
        ev.removed("door");
        for rx in [&mut a, &mut b] {
            let got: Vec<(u64, &str, Option<Phase>)> = (0..3)
                .map(|_| rx.try_recv().unwrap())
                .map(|e| (e.id, e.kind, e.state))
                .collect();
            assert_eq!(
                got,
                [
                    (2, "state", Some(Phase::Streaming)),
                    (3, "state", Some(Phase::Failed)),
                    (4, "removed", None)
                ]
            );
            assert!(rx.try_recv().is_err(), "each once");
        }
    }
}
