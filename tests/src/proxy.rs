//! Starting an in-process `triton-proxy` on 127.0.0.1:0 and talking to it.

use std::net::SocketAddr;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;
use triton_proto::multimodal::data_packet::Payload;
use triton_proto::multimodal::multi_modal_client::MultiModalClient;
use triton_proto::multimodal::{Ack, DataPacket, Frame, Image, Meta};
use triton_proxy::{Config, Proxy};

use crate::MAX_MESSAGE;

/// A running proxy; shut down (drained) on drop.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestProxy {
    /// Starts a proxy in front of `triton_url` with `args` (flags) added after the defaults:
    /// loopback, free ports, api key `test-key` (which may set the parameter `delay_ms`).
    pub async fn start(triton_url: &str, args: &[&str]) -> anyhow::Result<TestProxy> {
        let mut argv = vec![
            "triton-proxy",
            "--triton-url",
            triton_url,
            "--proxy-host",
            "127.0.0.1",
            "--proxy-port",
            "0",
            "--proxy-metrics-port",
            "0",
            "--triton-model-name",
            "shapes_yolov8",
        ];
        if !args.iter().any(|a| {
            a.starts_with("--grpc-expect")
                || a.starts_with("--proxy-keys-file")
                || a.starts_with("--proxy-allow")
        }) {
            // The test models' own parameter (a delay), which some tests set.
            argv.extend([
                "--grpc-expect-api-key",
                "test-key",
                "--proxy-allowed-parameters",
                "delay_ms",
            ]);
        }
        argv.extend_from_slice(args);
        let proxy = Proxy::bind(Config::from_args(argv)?).await?;
        let addr = proxy.local_addr();
        let metrics_addr = proxy.metrics_addr();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(proxy.serve(async {
            let _ = rx.await;
        }));
        Ok(TestProxy {
            addr,
            metrics_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the drain and waits until the server has returned.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => t.await?,
            None => Ok(()),
        }
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        metrics_at(self.metrics_addr.expect("metrics on")).await
    }
}

/// The Prometheus text of a proxy's metrics listener at `addr`.
pub async fn metrics_at(addr: SocketAddr) -> String {
    http_get(addr, "/metrics", "").await
}

/// The whole answer (status line, headers, body) to `GET path` with extra header lines
/// `headers` (each ending in CRLF).
pub async fn http_get(addr: SocketAddr, path: &str, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // `connection: close`: the metrics port keeps a connection open otherwise (HTTP/1.1), and
    // this reads to its end.
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{headers}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The value of the metric line that starts with `series` in a `/metrics` text (0 when absent).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A client with 64 MiB limits.
pub async fn client(url: &str) -> MultiModalClient<Channel> {
    let ch = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    MultiModalClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// An open Chat stream: send packets, read Acks.
pub struct Chat {
    pub tx: mpsc::Sender<DataPacket>,
    pub rx: Streaming<Ack>,
}

impl Chat {
    /// Opens a stream with the given auth header (name, value), if any.
    pub async fn open(
        url: &str,
        header: Option<(&'static str, &str)>,
    ) -> Result<Chat, tonic::Status> {
        Chat::open_on(&client(url).await, header).await
    }

    /// Opens a stream on an existing client (its connection), with an auth header if any.
    pub async fn open_on(
        client: &MultiModalClient<Channel>,
        header: Option<(&'static str, &str)>,
    ) -> Result<Chat, tonic::Status> {
        let mut c = client.clone();
        let (tx, rx) = mpsc::channel(64);
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        if let Some((k, v)) = header {
            req.metadata_mut().insert(k, v.parse().unwrap());
        }
        let resp = c.chat(req).await?;
        Ok(Chat {
            tx,
            rx: resp.into_inner(),
        })
    }

    /// Opens with the default test key.
    pub async fn open_default(url: &str) -> Chat {
        Chat::open(url, Some(("x-domino-api-key", "test-key")))
            .await
            .unwrap()
    }

    /// Sends one packet and waits for its Ack.
    pub async fn roundtrip(&mut self, p: DataPacket) -> Ack {
        self.tx.send(p).await.unwrap();
        self.rx.message().await.unwrap().expect("an Ack")
    }
}

/// A packet with an `image` payload and an optional control note.
pub fn image_packet(id: &str, note: &str, data: Vec<u8>) -> DataPacket {
    DataPacket {
        meta: Some(Meta {
            correlation_id: id.into(),
            note: note.into(),
            stream_id: "test".into(),
            capture_ts_ns: 0,
        }),
        payload: Some(Payload::Image(Image { data: data.into() })),
    }
}

/// A packet with a `frame` payload.
pub fn frame_packet(id: &str, note: &str, data: Vec<u8>) -> DataPacket {
    DataPacket {
        meta: Some(Meta {
            correlation_id: id.into(),
            note: note.into(),
            ..Default::default()
        }),
        payload: Some(Payload::Frame(Frame { data: data.into() })),
    }
}

/// Control JSON for a `shapes_*` model on a `[1,3,h,w]` FP32 image payload.
pub fn shapes_note(model: &str, w: usize, h: usize, binary: bool) -> String {
    serde_json::json!({
        "model": model,
        "inputs": [{"name": "images", "shape": [1, 3, h, w], "dtype": "FP32", "from": "image"}],
        "outputs": ["output0"],
        "binary": binary,
    })
    .to_string()
}

/// Decodes output `name` of an OK Ack (base64 or raw) into (shape, bytes).
pub fn ack_output(ack: &Ack, name: &str) -> (Vec<i64>, Vec<u8>) {
    use base64::Engine;
    assert_eq!(ack.status_code, 0, "Ack failed: {}", ack.status_message);
    let msg: serde_json::Value = serde_json::from_str(&ack.message).expect("Ack.message is JSON");
    let o = &msg["outputs"][name];
    let shape: Vec<i64> = o["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let data = match o.get("b64") {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b.as_str().unwrap())
            .unwrap(),
        None => ack
            .raw_outputs
            .iter()
            .find(|r| r.name == name)
            .expect("raw output")
            .data
            .to_vec(),
    };
    (shape, data)
}

/// The `triton-proxy` binary in a process of its own (for RSS, restarts and its log), on a fixed
/// loopback port so that a restart comes back on the same address.
pub struct ProxyProcess {
    bin: std::path::PathBuf,
    pub port: u16,
    pub metrics_port: u16,
    args: Vec<String>,
    log: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl ProxyProcess {
    /// Starts it in front of `triton_url` (api key `test-key`) with extra flags `args`, and
    /// waits until it listens.
    pub fn start(triton_url: &str, args: &[&str]) -> ProxyProcess {
        Self::start_bin(crate::artifacts::bin("triton-proxy"), triton_url, args)
    }

    /// The same with the release build (benchmarks).
    pub fn start_release(triton_url: &str, args: &[&str]) -> ProxyProcess {
        Self::start_bin(
            crate::artifacts::release_bin("triton-proxy"),
            triton_url,
            args,
        )
    }

    /// A proxy from the binary at `bin` (the bench compares an older build this way).
    pub fn start_bin(bin: std::path::PathBuf, triton_url: &str, args: &[&str]) -> ProxyProcess {
        let port = crate::triton::free_port();
        let metrics_port = crate::triton::free_port();
        let mut all: Vec<String> = [
            "--triton-url",
            triton_url,
            "--proxy-host",
            "127.0.0.1",
            "--triton-model-name",
            "shapes_yolov8",
            "--grpc-expect-api-key",
            "test-key",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(["--proxy-port".into(), port.to_string()]);
        all.extend(["--proxy-metrics-port".into(), metrics_port.to_string()]);
        all.extend(args.iter().map(|s| s.to_string()));
        let log =
            std::env::temp_dir().join(format!("triton-proxy-{}-{port}.log", std::process::id()));
        let mut p = ProxyProcess {
            bin,
            port,
            metrics_port,
            args: all,
            log,
            child: None,
        };
        p.restart();
        p
    }

    /// (Re)starts the process on the same ports; its log is appended to.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("proxy log file");
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.args(&self.args)
            .env_remove("GRPC_EXPECT_BEARER")
            .env_remove("PROXY_KEYS_FILE")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(crate::triton::spawn_tied(cmd).expect("spawn triton-proxy"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "triton-proxy did not listen on {}: {}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM (a graceful stop: drain, then exit) and waits up to 30 s for the exit; its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("a running proxy");
        // SAFETY: a signal to our own child.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s;
            }
            if std::time::Instant::now() > deadline {
                crate::triton::kill_group(&mut c, libc::SIGKILL);
                panic!("triton-proxy did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL, no drain.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::triton::kill_group(&mut c, libc::SIGKILL);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Resident memory in bytes, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.pid()?)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Resident memory of process `pid` in bytes, from /proc.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
