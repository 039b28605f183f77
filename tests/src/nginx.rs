//! nginx (`nginx-light` from Debian) as a plain gRPC forwarder (`grpc_pass`) in front of a KServe
//! server, on a free loopback port, one process (`master_process off`), for the proxy benchmark's
//! baseline. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::triton::{free_port, kill_group, spawn_tied};

pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The nginx binary: `NGINX` or Debian's path.
fn binary() -> PathBuf {
    std::env::var_os("NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

impl Nginx {
    /// Forwards every gRPC call on a free port to `upstream` (`host:port`, plaintext).
    pub fn start(upstream: &str) -> Result<Nginx> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nginx-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let d = dir.display();
        // Big messages pass unbuffered (gRPC request bodies are streamed); no access log.
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               client_max_body_size 0;\n  http2_max_concurrent_streams 1024;\n\
               server {{\n    listen 127.0.0.1:{port} http2;\n    location / {{\n      grpc_pass grpc://{upstream};\n\
                   grpc_read_timeout 120s;\n      grpc_send_timeout 120s;\n    }}\n  }}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(binary());
        cmd.arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied(cmd).with_context(|| {
            format!(
                "starting {} (apt-get install nginx-light)",
                binary().display()
            )
        })?;
        let mut n = Nginx {
            port,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || !n.running() {
                let log = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
                bail!("nginx did not listen on {port}: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(n)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The process (group) id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
