//! TLS end to end on loopback: certificates generated here; proxy with TLS and with mTLS;
//! tritoninfer with tls-ca-file (and a client certificate) through a real pipeline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst_triton_tests::Rect;
use gst_triton_tests::pipeline::{draw_rgb, run_frames};
use gst_triton_tests::proxy::{ProxyProcess, TestProxy};
use gst_triton_tests::triton::shared_url;
use gsttriton::meta;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The proxy's flags for mTLS with the test CA.
    fn mtls_args(&self) -> Vec<String> {
        [
            "--proxy-tls-cert",
            &self.path("server.pem"),
            "--proxy-tls-key",
            &self.path("server.key"),
            "--proxy-tls-client-ca",
            &self.path("ca.pem"),
        ]
        .map(String::from)
        .to_vec()
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    dir: &Path,
    name: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    usage: ExtendedKeyUsagePurpose,
) {
    let mut p =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

fn pki(tag: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = ca("gst-triton test CA");
    let other = ca("some other CA");
    std::fs::write(dir.join("ca.pem"), good.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
    leaf(&dir, "server", &good, ExtendedKeyUsagePurpose::ServerAuth);
    leaf(&dir, "client", &good, ExtendedKeyUsagePurpose::ClientAuth);
    leaf(
        &dir,
        "stranger",
        &other,
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki { dir }
}

fn infer(url: &str, tls: &str) -> gst_triton_tests::pipeline::Run {
    let frames = vec![draw_rgb(96, 64, &[Rect::new(10, 10, 30, 20, 2)]); 2];
    run_frames(
        &format!(
            "tritonletterbox ! tritoninfer url={url} model=shapes_nms api-key=test-key tls-domain=localhost on-error=fail timeout-ms=10000 {tls}"
        ),
        96,
        64,
        &frames,
        |_| {},
        Duration::from_secs(60),
    )
}

#[test]
fn tls_and_mtls_end_to_end() {
    let pki = pki("e2e");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // TLS: the right CA works; another CA is a clear certificate error.
    let p = rt
        .block_on(TestProxy::start(
            &shared_url(),
            &[
                "--proxy-tls-cert",
                &pki.path("server.pem"),
                "--proxy-tls-key",
                &pki.path("server.key"),
            ],
        ))
        .unwrap();
    let url = format!("https://127.0.0.1:{}", p.addr.port());
    let ok = infer(&url, &format!("tls-ca-file={}", pki.path("ca.pem")));
    assert!(ok.errors.is_empty(), "{:?}", ok.errors);
    assert_eq!(meta::detections(&ok.buffers[1], 96, 64).len(), 1);
    let wrong = infer(&url, &format!("tls-ca-file={}", pki.path("other-ca.pem")));
    let msg = wrong.errors.join("\n");
    assert!(
        msg.to_lowercase().contains("certificate") || msg.contains("UnknownIssuer"),
        "{msg}"
    );
    // Plain text against a TLS port fails too, clearly.
    let plain = infer(&format!("http://127.0.0.1:{}", p.addr.port()), "");
    // Explained when h2 reports the TLS bytes as a protocol error; when the connection fails
    // first, a transport error or a cancelled request (the server's alert closed the connection
    // under it) — never an answer, never an authentication error. (Explaining those two as well
    // is open in issue 17.)
    let msg = plain.errors.join("\n");
    assert!(
        msg.contains("it may speak TLS") && msg.contains("use an https:// address in url"),
        "{msg}"
    );
    // And TLS against a plaintext port: the handshake fails, explained.
    let plain_proxy = rt.block_on(TestProxy::start(&shared_url(), &[])).unwrap();
    let wrong = infer(
        &format!("https://127.0.0.1:{}", plain_proxy.addr.port()),
        &format!("tls-ca-file={}", pki.path("ca.pem")),
    );
    let msg = wrong.errors.join("\n");
    assert!(
        msg.contains("it may speak plaintext") && msg.contains("use an http:// address in url"),
        "{msg}"
    );
    drop(plain_proxy);
    drop(p);

    // mTLS: no client certificate → refused; a certificate from another CA → refused; ours → works.
    let p = rt
        .block_on(TestProxy::start(
            &shared_url(),
            &pki.mtls_args()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ))
        .unwrap();
    let url = format!("https://127.0.0.1:{}", p.addr.port());
    let ca = format!("tls-ca-file={}", pki.path("ca.pem"));
    let anonymous = infer(&url, &ca);
    let msg = anonymous.errors.join("\n");
    // The server's alert (certificate required) or, when the request wins the race with it, the
    // connection it closes; either way the message names the settings to add.
    assert!(
        (msg.contains("the server requires a client certificate")
            || msg.contains("it may have refused the client certificate"))
            && msg.contains("tls-cert-file")
            && msg.contains("tls-key-file"),
        "mTLS without a client certificate: {msg}"
    );
    let stranger = infer(
        &url,
        &format!(
            "{ca} tls-cert-file={} tls-key-file={}",
            pki.path("stranger.pem"),
            pki.path("stranger.key")
        ),
    );
    let msg = stranger.errors.join("\n");
    // The server's alert (unknown CA) or, when the request wins the race with it, the
    // connection it closes: either way the message points at the client certificate.
    assert!(
        msg.contains("refused the client certificate") && msg.contains("tls-cert-file"),
        "mTLS with a certificate from another CA: {msg}"
    );
    let client = infer(
        &url,
        &format!(
            "{ca} tls-cert-file={} tls-key-file={}",
            pki.path("client.pem"),
            pki.path("client.key")
        ),
    );
    assert!(client.errors.is_empty(), "{:?}", client.errors);
    assert_eq!(meta::detections(&client.buffers[1], 96, 64).len(), 1);
    drop(p);
}

/// The proxy's own log says what each mismatched client got wrong and what to set.
#[test]
fn tls_mismatches_are_explained_in_the_proxy_log() {
    let pki = pki("log");
    let proxy = ProxyProcess::start(
        &shared_url(),
        &pki.mtls_args()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let url = format!("https://127.0.0.1:{}", proxy.port);
    let ca = format!("tls-ca-file={}", pki.path("ca.pem"));
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = proxy.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the proxy log lacks '{needle}':\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let anonymous = infer(&url, &ca);
    assert!(!anonymous.errors.is_empty());
    wait_for("the client sent no certificate, and PROXY_TLS_CLIENT_CA requires one");
    let stranger = infer(
        &url,
        &format!(
            "{ca} tls-cert-file={} tls-key-file={}",
            pki.path("stranger.pem"),
            pki.path("stranger.key")
        ),
    );
    assert!(!stranger.errors.is_empty());
    wait_for("it must be signed by the CA in PROXY_TLS_CLIENT_CA");
    let plain = infer(&format!("http://127.0.0.1:{}", proxy.port), "");
    assert!(!plain.errors.is_empty());
    wait_for("plaintext on the TLS port: the client must use an https:// address");
    let untrusting = infer(&url, &format!("tls-ca-file={}", pki.path("other-ca.pem")));
    assert!(!untrusting.errors.is_empty());
    let log = wait_for("it does not trust this proxy's certificate");
    // triton-video says the same in its own setting names, and exits 2 (a configuration mistake).
    let clip = gst_triton_tests::artifacts::demo_clip("tls-video", 2, 96, 64);
    let video = |addr: &str, extra: &[(&str, &str)]| {
        let mut c = std::process::Command::new(gst_triton_tests::artifacts::bin("triton-video"));
        for k in [
            "TRITON_URL",
            "GRPC_BEARER_TOKEN",
            "TLS_CERT_FILE",
            "TLS_KEY_FILE",
        ] {
            c.env_remove(k);
        }
        c.env("MM_ADDR", addr)
            .env("DOMINO_API_KEY", "test-key")
            .env("VIDEO_PATH", &clip)
            .env("RESULTS_DIR", clip.with_file_name("results"))
            .env("MODEL_NAME", "shapes_nms")
            .envs(extra.iter().copied());
        let out = c.output().expect("run triton-video");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ca_file = pki.path("ca.pem");
    let (code, err) = video(&url, &[("TLS_CA_FILE", &ca_file)]);
    assert!(
        code == Some(2) && err.contains("TLS_CERT_FILE") && err.contains("TLS_KEY_FILE"),
        "triton-video without a client certificate: {code:?} {err}"
    );
    let (code, err) = video(&format!("http://127.0.0.1:{}", proxy.port), &[]);
    assert!(
        code == Some(2) && err.contains("use an https:// address in MM_ADDR"),
        "triton-video in plaintext: {code:?} {err}"
    );
    for secret in ["BEGIN PRIVATE KEY", "test-key"] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}

/// `triton-proxy --health-check` of a proxy that requires client certificates: it has none, so
/// it reads `/healthz` on the metrics port (plain HTTP) and passes while a Triton is ready; in
/// front of no Triton it fails. A container health check of an mTLS proxy can therefore pass.
#[test]
fn the_health_check_of_an_mtls_proxy_needs_no_client_certificate() {
    let pki = pki("health");
    let args = pki.mtls_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let check = |p: &ProxyProcess| {
        std::process::Command::new(gst_triton_tests::artifacts::bin("triton-proxy"))
            .arg("--health-check")
            .args(["--proxy-port", &p.port.to_string()])
            .args(["--proxy-metrics-port", &p.metrics_port.to_string()])
            .args(&args)
            .status()
            .unwrap()
            .code()
    };
    let ready = ProxyProcess::start(&shared_url(), &args);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while check(&ready) != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the health check of an mTLS proxy in front of a ready Triton never passed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let nowhere = format!("http://127.0.0.1:{}", gst_triton_tests::triton::free_port());
    let down = ProxyProcess::start(&nowhere, &args);
    // NOT_SERVING from its start until a probe finds a ready Triton, which never happens here.
    assert_eq!(
        check(&down),
        Some(1),
        "a proxy with no Triton reported healthy"
    );
}

/// The proxy in front of a Triton that takes only TLS with client certificates
/// (`--grpc-use-ssl-mutual`), started here with the test CA's certificates: with
/// `TRITON_CA_FILE` and a client certificate a packet is answered; without the certificate, or
/// trusting another CA, the packet gets UNAVAILABLE; an `https://` upstream without a CA file is
/// refused at start, naming the setting. The server name is checked: the proxy reaches
/// `https://127.0.0.1` with `TRITON_TLS_SERVER_NAME=localhost` (a name the certificate carries)
/// and not with a name it does not carry.
#[test]
fn the_proxy_reaches_a_triton_that_takes_only_mutual_tls() {
    let pki = pki("upstream");
    let server_args: Vec<String> = [
        "--grpc-use-ssl=true".to_string(),
        "--grpc-use-ssl-mutual=true".to_string(),
        format!("--grpc-server-cert={}", pki.path("server.pem")),
        format!("--grpc-server-key={}", pki.path("server.key")),
        format!("--grpc-root-cert={}", pki.path("ca.pem")),
        "--model-control-mode=explicit".to_string(),
        "--load-model=shapes_nms".to_string(),
    ]
    .to_vec();
    let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let triton = gst_triton_tests::triton::Triton::start_with_args(
        &gst_triton_tests::triton::repo_root().join("models"),
        &server_args,
    )
    .unwrap();
    let https = format!("https://127.0.0.1:{}", triton.grpc_port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = |p: &ProxyProcess| {
        rt.block_on(async {
            let mut c = gst_triton_tests::proxy::Chat::open_default(&p.url()).await;
            let ack = c
                .roundtrip(gst_triton_tests::proxy::image_packet(
                    "tls:1",
                    &gst_triton_tests::proxy::shapes_note("shapes_nms", 16, 16, true),
                    gst_triton_tests::draw_tensor(16, 16, &[Rect::new(2, 2, 8, 8, 1)]),
                ))
                .await;
            (ack.status_code, ack.status_message)
        })
    };
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let mtls = [
        "--triton-ca-file",
        &ca,
        "--triton-client-cert",
        &cert,
        "--triton-client-key",
        &key,
    ];
    let good = ProxyProcess::start(&https, &mtls);
    let (code, msg) = answer(&good);
    assert_eq!(code, 0, "{msg}; proxy log: {}", good.log_text());

    let named = [&mtls[..], &["--triton-tls-server-name", "localhost"]].concat();
    let (code, msg) = answer(&ProxyProcess::start(&https, &named));
    assert_eq!(code, 0, "with the server name 'localhost': {msg}");
    let misnamed = [&mtls[..], &["--triton-tls-server-name", "triton.example"]].concat();
    let (code, msg) = answer(&ProxyProcess::start(&https, &misnamed));
    assert_eq!(
        code,
        tonic::Code::Unavailable as i32,
        "a name the certificate lacks: {msg}"
    );

    let (code, msg) = answer(&ProxyProcess::start(&https, &["--triton-ca-file", &ca]));
    assert_eq!(
        code,
        tonic::Code::Unavailable as i32,
        "no client certificate: {msg}"
    );
    let other = pki.path("other-ca.pem");
    let distrust = [&["--triton-ca-file", other.as_str()], &mtls[2..]].concat();
    let (code, msg) = answer(&ProxyProcess::start(&https, &distrust));
    assert_eq!(code, tonic::Code::Unavailable as i32, "another CA: {msg}");

    let out = std::process::Command::new(gst_triton_tests::artifacts::bin("triton-proxy"))
        .args(["--triton-url", &https, "--grpc-expect-api-key", "k"])
        .args(["--proxy-port", "0", "--proxy-metrics-port", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("TRITON_CA_FILE"),
        "{err}"
    );
}
