//! Closing a connection without losing what was last sent on it (a "lingering close").
//!
//! When the HTTP/2 server is done with a connection it writes its last frames (a stream's
//! trailers, GOAWAY) and drops the socket. If the client's own frames are still unread in the
//! kernel's buffer then — a client keeps sending until it sees the stream end — closing the socket
//! sends a TCP reset instead of a FIN, and the client's kernel may throw away the frames it had
//! not read yet: the client sees the connection break instead of the stream end with OK (the
//! drain's promise). So a closed connection is handed to a task that sends FIN, reads and discards
//! until the client closes too (or [`LINGER`] passes), and only then closes the socket. The
//! proxy's `serve` waits for these tasks (at most [`LINGER`]) before it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// How long a closed connection waits for its client to close too.
pub const LINGER: Duration = Duration::from_secs(2);

/// The connections still lingering, so that a stopping process can wait for them.
#[derive(Default)]
pub struct Lingering {
    open: AtomicUsize,
    done: Notify,
}

impl Lingering {
    /// Closes `io` in the background: FIN, then reads until the peer's FIN, an error or
    /// [`LINGER`]. Without a runtime (dropped outside one), `io` is closed at once.
    pub fn close<S>(self: &Arc<Self>, mut io: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.open.fetch_add(1, Ordering::AcqRel);
        let me = self.clone();
        rt.spawn(async move {
            let _ = tokio::time::timeout(LINGER, async {
                let _ = io.shutdown().await;
                let mut scratch = [0u8; 4096];
                while let Ok(n) = io.read(&mut scratch).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            drop(io);
            me.open.fetch_sub(1, Ordering::AcqRel);
            me.done.notify_waiters();
        });
    }

    /// Waits until no connection lingers, or `max` passed.
    pub async fn finished(&self, max: Duration) {
        let _ = tokio::time::timeout(max, async {
            loop {
                let notified = self.done.notified();
                if self.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }

    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A closed connection keeps reading what its client still sends, so that closing it is a
    /// FIN, not a reset: a reset may throw away the server's last bytes still queued to send
    /// (a stream's trailers), and is what the client's writes meet with a plain close.
    #[tokio::test]
    async fn a_lingering_close_reads_until_the_client_closes_so_it_never_resets() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let lingering = Arc::new(Lingering::default());
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = l.accept().await.unwrap();
        // The client's bytes wait unread at the server when it answers, sends FIN (as hyper
        // does when it shuts a connection down) and closes.
        client.write_all(&[7u8; 64 * 1024]).await.unwrap();
        server.write_all(b"the end").await.unwrap();
        server.shutdown().await.unwrap();
        lingering.close(server);
        // The client keeps sending, as an h2 client does until it reads the end.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let sent = client.write_all(&[8u8; 1024]).await;
            assert!(sent.is_ok(), "the server reset the connection: {sent:?}");
        }
        let mut got = Vec::new();
        let read = client.read_to_end(&mut got).await;
        assert!(read.is_ok(), "the client's read failed: {read:?}");
        assert_eq!(got, b"the end");
        drop(client);
        lingering.finished(LINGER).await;
        assert_eq!(
            lingering.count(),
            0,
            "a lingering close outlived its client"
        );
    }
}
