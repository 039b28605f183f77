//! The ordered hand-over between `tritoninfer`'s chain function (producer) and its src pad task
//! (consumer): frames wait here, in arrival order, for their answers. At most `max` frames are
//! queued (back-pressure: the producer blocks); a flush empties it and wakes everyone; a
//! downstream flow error stops the producer. Generic and free of GStreamer, so it is unit-tested.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused<E> {
    Flushing,
    Flow(E),
}

struct Inner<T, E> {
    /// Items with whether each counts against `max` (frames do, events do not).
    items: VecDeque<(T, bool)>,
    frames: usize,
    /// The consumer has taken an item and not yet come back for the next one (it is being
    /// pushed downstream).
    taken: bool,
    flushing: bool,
    flow: Result<(), E>,
}

pub struct OrderedQueue<T, E> {
    inner: Mutex<Inner<T, E>>,
    cond: Condvar,
    /// Signalled by every flush, so that a consumer waiting on an answer can give up.
    flushes: watch::Sender<()>,
}

impl<T, E: Copy> OrderedQueue<T, E> {
    /// A queue that starts flushing (nothing is accepted before [`set_flushing(false)`]).
    ///
    /// [`set_flushing(false)`]: OrderedQueue::set_flushing
    pub fn new() -> Self {
        OrderedQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                frames: 0,
                taken: false,
                flushing: true,
                flow: Ok(()),
            }),
            cond: Condvar::new(),
            flushes: watch::channel(()).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T, E>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits while `max` frames are queued. The producer calls this before it sends a request,
    /// so that at most `max` requests are ever outstanding; it is the only producer, so the
    /// room is still there when it pushes.
    pub fn wait_for_room(&self, max: usize) -> Result<(), Refused<E>> {
        let mut q = self.lock();
        while q.frames >= max.max(1) && !q.flushing && q.flow.is_ok() {
            q = self.cond.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        Self::accepting(&q)
    }

    fn accepting(q: &Inner<T, E>) -> Result<(), Refused<E>> {
        if q.flushing {
            return Err(Refused::Flushing);
        }
        q.flow.map_err(Refused::Flow)
    }

    /// Queues a frame (after [`wait_for_room`]).
    ///
    /// [`wait_for_room`]: OrderedQueue::wait_for_room
    pub fn push_frame(&self, item: T) -> Result<(), Refused<E>> {
        let mut q = self.lock();
        Self::accepting(&q)?;
        q.frames += 1;
        q.items.push_back((item, true));
        self.cond.notify_all();
        Ok(())
    }

    /// Queues an item that does not count against `max` (a serialized event); `false` while
    /// flushing.
    pub fn push_other(&self, item: T) -> bool {
        let mut q = self.lock();
        if q.flushing {
            return false;
        }
        q.items.push_back((item, false));
        self.cond.notify_all();
        true
    }

    /// Flushing drops every queued item and refuses new ones; leaving it clears a flow error.
    pub fn set_flushing(&self, flushing: bool) {
        let mut q = self.lock();
        q.flushing = flushing;
        if flushing {
            q.items.clear();
            q.frames = 0;
            q.taken = false;
            self.flushes.send_replace(());
        } else {
            q.flow = Ok(());
        }
        self.cond.notify_all();
    }

    /// Records a downstream error: the producer gets it from its next (or current) push.
    pub fn fail(&self, e: E) {
        self.lock().flow = Err(e);
        self.cond.notify_all();
    }

    /// Changes with every flush.
    pub fn flushes(&self) -> watch::Receiver<()> {
        self.flushes.subscribe()
    }

    /// Waits for a head item and lets `peek` look at it (it stays queued and counted);
    /// `None` when flushing.
    pub fn peek_head<R>(&self, peek: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut q = self.lock();
        // Back for the next item: the one taken before has been pushed.
        if std::mem::replace(&mut q.taken, false) {
            self.cond.notify_all();
        }
        while q.items.is_empty() && !q.flushing {
            q = self.cond.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.flushing {
            return None;
        }
        q.items.front_mut().map(|(t, _)| peek(t))
    }

    /// Takes the head item, making room for the producer; `None` when flushing or empty.
    pub fn pop(&self) -> Option<T> {
        let mut q = self.lock();
        if q.flushing {
            return None;
        }
        let (item, counts) = q.items.pop_front()?;
        if counts {
            q.frames -= 1;
        }
        q.taken = true;
        self.cond.notify_all();
        Some(item)
    }

    /// Waits until every item queued so far has been taken and pushed on (the consumer is back
    /// for the next one): a serialized query (an allocation query after new caps) must not
    /// overtake the events and frames queued before it. `Err` when flushing or after a
    /// downstream error, which end the wait.
    pub fn wait_drained(&self) -> Result<(), Refused<E>> {
        let mut q = self.lock();
        while (!q.items.is_empty() || q.taken) && !q.flushing && q.flow.is_ok() {
            q = self.cond.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        Self::accepting(&q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    type Q = OrderedQueue<u32, &'static str>;

    fn open() -> Arc<Q> {
        let q = Arc::new(Q::new());
        q.set_flushing(false);
        q
    }

    #[test]
    fn a_new_queue_is_flushing() {
        let q = Q::new();
        assert_eq!(q.push_frame(1), Err(Refused::Flushing));
        assert!(!q.push_other(2));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_serialized_query_waits_until_what_came_before_it_was_pushed_on() {
        let q = open();
        assert_eq!(q.wait_drained(), Ok(()), "nothing queued: no wait");
        q.push_frame(1).unwrap();
        assert!(q.push_other(100));
        let drained = Arc::new(AtomicUsize::new(0));
        let (q2, d2) = (q.clone(), drained.clone());
        let waiter = std::thread::spawn(move || {
            let r = q2.wait_drained();
            d2.store(1, Ordering::SeqCst);
            r
        });
        let still_waiting = |what: &str| {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(drained.load(Ordering::SeqCst), 0, "{what}");
        };
        still_waiting("two items queued");
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.peek_head(|x| *x), Some(100));
        assert_eq!(q.pop(), Some(100));
        still_waiting("the last item taken but not yet pushed on");
        // The consumer comes back for the next item: everything before the query is downstream.
        let q3 = q.clone();
        let consumer = std::thread::spawn(move || q3.peek_head(|x| *x));
        assert_eq!(waiter.join().unwrap(), Ok(()));
        q.set_flushing(true);
        assert_eq!(consumer.join().unwrap(), None);
    }

    #[test]
    fn a_flush_or_a_downstream_error_ends_the_wait_for_a_drain() {
        let q = open();
        q.push_frame(1).unwrap();
        let q2 = q.clone();
        let waiter = std::thread::spawn(move || q2.wait_drained());
        std::thread::sleep(Duration::from_millis(30));
        q.fail("not-linked");
        assert_eq!(waiter.join().unwrap(), Err(Refused::Flow("not-linked")));
        let q = open();
        q.push_frame(1).unwrap();
        let q2 = q.clone();
        let waiter = std::thread::spawn(move || q2.wait_drained());
        std::thread::sleep(Duration::from_millis(30));
        q.set_flushing(true);
        assert_eq!(waiter.join().unwrap(), Err(Refused::Flushing));
    }

    #[test]
    fn items_leave_in_order_and_events_do_not_count() {
        let q = open();
        q.push_frame(1).unwrap();
        assert!(q.push_other(100));
        q.push_frame(2).unwrap();
        assert_eq!(q.peek_head(|x| *x), Some(1));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(100));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn the_producer_blocks_at_max_until_the_consumer_pops() {
        let q = open();
        let pushed = Arc::new(AtomicUsize::new(0));
        let (q2, p2) = (q.clone(), pushed.clone());
        let producer = std::thread::spawn(move || {
            for i in 0..5 {
                q2.wait_for_room(3).and_then(|()| q2.push_frame(i)).unwrap();
                p2.fetch_add(1, Ordering::SeqCst);
            }
        });
        while pushed.load(Ordering::SeqCst) < 3 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(pushed.load(Ordering::SeqCst), 3, "a 4th frame got past max");
        assert_eq!(q.pop(), Some(0));
        while pushed.load(Ordering::SeqCst) < 4 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pushed.load(Ordering::SeqCst), 4);
        assert_eq!(q.pop(), Some(1));
        producer.join().unwrap();
        assert_eq!(
            (2..5).map(|_| q.pop().unwrap()).collect::<Vec<_>>(),
            [2, 3, 4]
        );
    }

    #[test]
    fn a_flush_wakes_a_blocked_producer_and_drops_everything() {
        let q = open();
        q.push_frame(1).unwrap();
        let q2 = q.clone();
        let producer =
            std::thread::spawn(move || q2.wait_for_room(1).and_then(|()| q2.push_frame(2)));
        std::thread::sleep(Duration::from_millis(50));
        let flushes = q.flushes();
        q.set_flushing(true);
        assert_eq!(producer.join().unwrap(), Err(Refused::Flushing));
        assert!(flushes.has_changed().unwrap());
        assert_eq!(q.peek_head(|x| *x), None);
        q.set_flushing(false);
        assert_eq!(q.pop(), None, "the flush dropped the queued frame");
        q.push_frame(3).unwrap();
        assert_eq!(q.pop(), Some(3));
    }

    #[test]
    fn a_flow_error_stops_the_producer_until_the_next_flush() {
        let q = open();
        q.push_frame(1).unwrap();
        let q2 = q.clone();
        let producer =
            std::thread::spawn(move || q2.wait_for_room(1).and_then(|()| q2.push_frame(2)));
        std::thread::sleep(Duration::from_millis(50));
        q.fail("not-linked");
        assert_eq!(producer.join().unwrap(), Err(Refused::Flow("not-linked")));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.push_frame(3), Err(Refused::Flow("not-linked")));
        q.set_flushing(true);
        q.set_flushing(false);
        assert_eq!(q.push_frame(4), Ok(()));
    }

    #[test]
    fn peek_waits_for_an_item() {
        let q = open();
        let q2 = q.clone();
        let consumer = std::thread::spawn(move || q2.peek_head(|x| *x));
        std::thread::sleep(Duration::from_millis(50));
        q.push_frame(7).unwrap();
        assert_eq!(consumer.join().unwrap(), Some(7));
    }
}
