//! A real `tritonserver` (CPU, Python backend) for tests, started through `scripts/triton.sh run`.
//!
//! * [`Triton::start`] starts a private server on free loopback ports; it is killed on drop.
//! * [`shared_url`] returns one server per test process (or `TRITON_TEST_URL` when the test command
//!   already started one); it dies with the process.
//!
//! Every child gets its own process group and `PR_SET_PDEATHSIG(SIGKILL)`, so no server outlives a
//! test process, even one that panics or is killed. The death signal fires when the *thread* that
//! forked exits, so children are forked by one spawner thread that lives as long as the process.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Root of the repository (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static mpsc::Sender<SpawnReq> {
    static TX: OnceLock<mpsc::Sender<SpawnReq>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // Keep this thread (the children's parent thread) alive for the whole process.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn child-spawner thread");
        tx
    })
}

/// Spawns `cmd` in its own process group, killed with SIGKILL when this process dies.
pub fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner().send((cmd, tx)).expect("spawner thread alive");
    rx.recv().expect("spawner replies")
}

/// Kills a child's whole process group and reaps it.
pub fn kill_group(child: &mut Child, signal: i32) {
    let pid = child.id() as i32;
    // SAFETY: plain syscalls on a process group we created.
    unsafe {
        libc::kill(-pid, signal);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// A tritonserver process owned by a test.
pub struct Triton {
    child: Option<Child>,
    /// gRPC port on 127.0.0.1.
    pub grpc_port: u16,
    /// Prometheus metrics port.
    pub metrics_port: u16,
    models: PathBuf,
    log: PathBuf,
    /// More `tritonserver` flags (`TRITON_EXTRA_ARGS` of `scripts/triton.sh`).
    extra: Vec<String>,
}

impl Triton {
    /// Starts a server with the repository's `models/` on free ports and waits until it is ready.
    pub fn start() -> Result<Triton> {
        Self::start_with(&repo_root().join("models"))
    }

    /// Two servers with the repository's `models/`, started side by side.
    pub fn start_two() -> Result<(Triton, Triton)> {
        std::thread::scope(|s| {
            let a = s.spawn(Triton::start);
            let b = s.spawn(Triton::start);
            Ok((a.join().expect("start a")?, b.join().expect("start b")?))
        })
    }

    /// Starts a server with another model repository.
    pub fn start_with(models: &Path) -> Result<Triton> {
        Self::start_with_args(models, &[])
    }

    /// Starts a server with another model repository and more `tritonserver` flags.
    pub fn start_with_args(models: &Path, extra: &[&str]) -> Result<Triton> {
        let mut last = None;
        for _ in 0..3 {
            let mut t = Triton {
                child: None,
                grpc_port: free_port(),
                metrics_port: free_port(),
                models: models.to_path_buf(),
                log: PathBuf::new(),
                extra: extra.iter().map(|a| a.to_string()).collect(),
            };
            match t.launch() {
                Ok(()) => return Ok(t),
                // A port taken between free_port() and the bind: try other ports.
                Err(e) if format!("{e:#}").contains("ddress already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// `http://127.0.0.1:<grpc_port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The pid of the server's process group leader (every process of the server is in its
    /// group, the Python backend's stubs included).
    pub fn group(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to go.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c, libc::SIGKILL);
        }
    }

    /// Stops the server gracefully.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c, libc::SIGTERM);
        }
    }

    /// Begins a graceful stop the way Kubernetes, `podman stop` and systemd do: SIGTERM to the
    /// server process alone (its Python backend stubs are its to stop), without waiting. The
    /// server goes on answering while it shuts down; [`Triton::wait_stopped`] waits for the end.
    pub fn terminate(&mut self) {
        if let Some(c) = &self.child {
            // SAFETY: a signal to our own child (triton.sh `run` execs tritonserver).
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
    }

    /// Waits up to `within` for a terminated server to exit, then kills what is left of its
    /// group; its exit status, or `None` when it had to be killed.
    pub fn wait_stopped(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let deadline = Instant::now() + within;
        let status = loop {
            match c.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => break None,
            }
        };
        kill_group(&mut c, libc::SIGKILL);
        status
    }

    /// Starts the server again on the same ports.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn launch(&mut self) -> Result<()> {
        let root = repo_root();
        let state = root.join("target").join("triton-test");
        std::fs::create_dir_all(&state)?;
        self.log = state.join(format!("triton-{}.log", self.grpc_port));
        let log = File::create(&self.log)?;
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("scripts/triton.sh"))
            .arg("run")
            .args(["--grpc-port", &self.grpc_port.to_string()])
            .args(["--metrics-port", &self.metrics_port.to_string()])
            .arg("--model-repository")
            .arg(&self.models)
            .env("TRITON_STATE_DIR", &state)
            .env("TRITON_EXTRA_ARGS", self.extra.join(" "))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_tied(cmd).context("spawning scripts/triton.sh run")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let text = self.log_text();
            // Both started: the metrics service starts just after gRPC (tests read it).
            if text.contains("Started GRPCInferenceService")
                && text.contains("Started Metrics Service")
            {
                return Ok(());
            }
            if !self.is_running() {
                self.child = None;
                bail!("tritonserver exited while starting: {}", first_error(&text));
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("tritonserver not ready after 180 s: {}", first_error(&text));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

fn first_error(log: &str) -> String {
    log.lines()
        .find(|l| {
            (l.contains("UNAVAILABLE") || l.contains("failed") || l.contains("error"))
                && !l.contains("NVML")
                && !l.contains("DCGM")
        })
        .unwrap_or_else(|| log.lines().last().unwrap_or("(empty log)"))
        .to_string()
}

impl Drop for Triton {
    fn drop(&mut self) {
        self.kill();
    }
}

/// URL of the Triton shared by this test process: `TRITON_TEST_URL` when set, else one started on
/// first use (it dies with the process).
pub fn shared_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TRITON_TEST_URL")
            && !url.is_empty()
        {
            return url;
        }
        let t =
            Triton::start().unwrap_or_else(|e| panic!("could not start the test Triton: {e:#}"));
        let url = t.url();
        std::mem::forget(t); // lives until the process ends (the death signal reaps it)
        url
    })
    .clone()
}

/// The value of a Prometheus counter line `name{model="...",...} value` of Triton for `model`.
pub fn counter(metrics: &str, name: &str, model: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("model=\"{model}\"")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {model} in Triton's metrics"))
}

/// Triton's Prometheus text from its metrics port.
pub fn triton_metrics(port: u16) -> String {
    use std::io::Write;
    // Triton logs "Started Metrics Service" a moment before the port answers: poll to a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("Triton's metrics port {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Waits until Triton's `nv_inference_count` for `model` reaches `at_least` (Triton counts a
/// request just after answering it), then returns its inference and execution counts.
pub fn settled_counts(metrics_port: u16, model: &str, at_least: f64) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = triton_metrics(metrics_port);
        let n = counter(&m, "nv_inference_count", model);
        if n >= at_least || Instant::now() > deadline {
            return (n, counter(&m, "nv_inference_exec_count", model));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
