//! Checks the server and credentials before starting (through [`triton_client`]'s readiness), so that a wrong address, key or model is
//! one clear line and an exit code (from [`triton_endpoint::Error::exit_code`]) rather than a
//! pipeline error.

use std::time::Duration;

use triton_client::readiness::Unready;
use triton_client::transport::unary::DEFAULT_SERVICE;
use triton_client::{Client, ClientConfig, Transport};
use triton_endpoint::{Auth, Error, Names, Target, Tls};

use super::args::Args;

/// Why the run cannot start: the exit code and the line to print.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    fn new(e: &Error, message: impl Into<String>) -> Failure {
        Failure {
            code: e.exit_code(),
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(&e, e.to_string())
    }
}

/// Where the runner connects: address and TLS from its settings, named as its user spells them.
pub fn target(a: &Args) -> Target {
    let (addr, field) = a.server();
    let mut t = Target::new(
        addr,
        Names {
            url: field,
            ..Names::RUNNER
        },
    );
    t.connect_timeout = Duration::from_secs(5);
    t.tls = Tls {
        ca_file: a.tls_ca_file.clone(),
        ..Tls::default()
    };
    t
}

pub fn preflight(a: &Args) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
    let (addr, _) = a.server();
    rt.block_on(async {
        tokio::time::timeout(ANSWER_LIMIT, check(a))
            .await
            .unwrap_or_else(|_| {
                Err(Failure {
                    code: 3,
                    message: format!(
                        "cannot reach the server at {addr}: no answer within {} s (something accepts connections there but does not answer gRPC)",
                        ANSWER_LIMIT.as_secs()
                    ),
                })
            })
    })
}

/// How long the checks before the run may wait for the server as a whole: a peer that accepts
/// the connection and never answers (a wrong port, a proxy that hangs) must not hold the start
/// forever.
const ANSWER_LIMIT: Duration = Duration::from_secs(15);

async fn check(a: &Args) -> Result<(), Failure> {
    if let Some(f) = &a.labels_file
        && let Err(e) = std::fs::metadata(f)
    {
        return Err(Failure {
            code: 2,
            message: format!(
                "LABELS_FILE: cannot read '{f}' ({e}); expected a file of class names, one per line"
            ),
        });
    }
    if a.shared_memory && !a.direct_to_server() {
        return Err(Failure {
            code: 2,
            message: "--shared-memory (SHARED_MEMORY) needs --direct: the proxy carries tensors over the network; shared memory is for a Triton on this host".into(),
        });
    }
    let target = target(a);
    let tls = target.tls_enabled();
    let (addr, _) = a.server();
    let (who, transport) = match (a.kserve, a.direct) {
        (true, _) => ("the KServe server", Transport::KserveUnary),
        (false, true) => ("Triton", Transport::TritonStream),
        _ => ("the proxy", Transport::Proxy),
    };
    let auth = Auth::new(
        a.domino_api_key.as_deref(),
        a.grpc_bearer_token.as_deref(),
        &Names::RUNNER,
    )?;
    let client = Client::new(ClientConfig {
        target,
        auth,
        transport,
        kserve_service: DEFAULT_SERVICE.into(),
        model: a.model_name.clone(),
        model_version: a.model_version.clone().unwrap_or_default(),
        output_names: vec![],
        timeout: Duration::from_secs(5),
        shm: None,
    });
    let not_ready = |what: String| {
        let e = Error::Status {
            code: tonic::Code::Unavailable,
            message: what.clone(),
        };
        Failure::new(&e, what)
    };
    let s = match client.readiness().await {
        Ok(()) => return Ok(()),
        Err(Unready::Connect(e)) => {
            return Err(match &e {
                Error::Connect { detail, .. } => {
                    Failure::new(&e, format!("cannot reach {who} at {addr}: {detail}"))
                }
                _ => e.into(),
            });
        }
        Err(Unready::Server) => return Err(not_ready(format!("{who} at {addr} is not ready"))),
        Err(Unready::Model) => {
            return Err(not_ready(format!(
                "MODEL_NAME: model '{}' is not ready on {who} at {addr}",
                a.model_name
            )));
        }
        Err(Unready::Refused(s)) => s,
    };
    let e = Error::from_status_on(&s, &Names::RUNNER, tls);
    if transport != Transport::Proxy {
        let why = match &e {
            Error::TlsMismatch { .. } => e.to_string(),
            _ => s.message().to_string(),
        };
        return Err(Failure::new(&e, format!("{who} at {addr}: {why}")));
    }
    let message = match s.code() {
        _ if matches!(e, Error::TlsMismatch { .. }) => format!("the proxy at {addr}: {e}"),
        tonic::Code::Unauthenticated => format!(
            "the proxy at {addr} refused the credentials: {} ({})",
            Names::RUNNER.credentials_hint,
            s.message()
        ),
        tonic::Code::PermissionDenied | tonic::Code::NotFound => {
            format!("MODEL_NAME: {}", s.message())
        }
        _ => format!("the proxy at {addr}: {}", s.message()),
    };
    Err(Failure::new(&e, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run(args: &[&str]) -> Failure {
        let mut argv = vec!["triton-video"];
        argv.extend_from_slice(args);
        preflight(&Args::parse_from(argv)).expect_err("preflight must fail")
    }

    #[test]
    fn a_bad_address_is_a_configuration_error_naming_the_variable() {
        let f = run(&["--mm-addr", "http://bad host:1"]);
        assert_eq!(f.code, 2);
        assert!(
            f.message.starts_with("MM_ADDR: 'http://bad host:1'"),
            "{}",
            f.message
        );
        let f = run(&["--direct", "--triton-url", "http://bad host:1"]);
        assert!(f.message.starts_with("TRITON_URL: "), "{}", f.message);
    }

    #[test]
    fn shared_memory_without_direct_is_a_configuration_error() {
        let f = run(&["--shared-memory"]);
        assert_eq!(f.code, 2);
        assert!(f.message.contains("needs --direct"), "{}", f.message);
    }

    #[test]
    fn an_unreadable_ca_file_is_a_configuration_error() {
        let f = run(&["--tls-ca-file", "/no/such/ca.pem"]);
        assert_eq!(f.code, 2);
        assert!(
            f.message
                .starts_with("TLS_CA_FILE: cannot read /no/such/ca.pem"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let f = run(&["--mm-addr", &addr]);
        assert_eq!(f.code, 3);
        assert!(
            f.message
                .starts_with(&format!("cannot reach the proxy at {addr}: ")),
            "{}",
            f.message
        );
        let f = run(&["--direct", "--triton-url", &addr]);
        assert!(
            f.message.starts_with("cannot reach Triton at "),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_key_that_is_no_header_value_is_refused_without_echoing_it() {
        let f = run(&["--domino-api-key", "bad\nkey"]);
        assert_eq!(f.code, 2);
        assert_eq!(f.message, "DOMINO_API_KEY: not a valid header value");
    }
}
