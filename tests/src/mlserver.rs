//! MLServer (PyPI `mlserver`), a second real KServe v2 server: `scripts/mlserver.sh run` on free
//! loopback ports, serving the shapes detector as a custom runtime (`mlserver/`), in its own
//! process group and tied to the test process like [`crate::triton::Triton`].

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::triton::{free_port, kill_group, repo_root, spawn_tied};

/// A running MLServer; killed on drop.
pub struct MlServer {
    child: Option<Child>,
    pub grpc_port: u16,
    log: std::path::PathBuf,
}

impl MlServer {
    /// Starts on free ports and waits until its models are loaded and gRPC listens.
    pub fn start() -> Result<MlServer> {
        let root = repo_root();
        let state = root.join("target").join("mlserver-test");
        std::fs::create_dir_all(&state)?;
        let grpc_port = free_port();
        let log = state.join(format!("mlserver-{grpc_port}.log"));
        let out = File::create(&log)?;
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("scripts/mlserver.sh"))
            .arg("run")
            .args(["--grpc-port", &grpc_port.to_string()])
            .args(["--http-port", &free_port().to_string()])
            .args(["--metrics-port", &free_port().to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = spawn_tied(cmd).context("spawning scripts/mlserver.sh run")?;
        let mut s = MlServer {
            child: Some(child),
            grpc_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = s.log_text();
            if text.contains("gRPC server running on")
                && text.contains("Loaded model 'shapes_nms'")
                && text.contains("Loaded model 'shapes_yolov8'")
            {
                return Ok(s);
            }
            let exited = matches!(s.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))));
            if exited || Instant::now() > deadline {
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                bail!(
                    "MLServer {}: {}",
                    if exited {
                        "exited while starting"
                    } else {
                        "not ready after 120 s"
                    },
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<grpc_port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MlServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c, libc::SIGTERM);
        }
    }
}
