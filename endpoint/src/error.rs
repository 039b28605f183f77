//! The typed error of every client endpoint, and what a gRPC status means for the user.

use crate::{Names, error_chain};

/// What went wrong, in variants callers can match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: '{value}' is not a valid address ({reason})")]
    InvalidUrl {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{field}: cannot read {path}: {source}")]
    ReadFile {
        field: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{cert} and {key} must be set together")]
    IncompleteIdentity {
        cert: &'static str,
        key: &'static str,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("{0}: not a valid header value")]
    InvalidCredential(&'static str),
    /// TLS settings that do not match the server's: what happened and what to set.
    #[error("TLS: {what}; {hint}")]
    TlsMismatch { what: &'static str, hint: String },
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("authentication failed ({message}); {hint}")]
    Unauthenticated { message: String, hint: &'static str },
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{code:?}: {message}")]
    Status { code: tonic::Code, message: String },
}

/// Broad classes of [`Error`], for exit codes and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A setting is wrong: fix the configuration, retrying will not help.
    Config,
    /// The server could not be reached.
    Unreachable,
    /// The server refused the credentials or the model.
    Refused,
    /// The server answered with another error.
    Server,
}

impl Error {
    /// A gRPC status, with the credentials hint for `UNAUTHENTICATED`, and TLS mismatches
    /// (which tonic reports as bare transport or protocol errors) explained.
    pub fn from_status(s: &tonic::Status, names: &Names) -> Error {
        Error::from_status_on(s, names, false)
    }

    /// As [`Error::from_status`], for a status from a connection that uses TLS (`tls`): there a
    /// connection closed under the first request is most likely a refused client certificate
    /// whose alert lost the race with the request.
    pub fn from_status_on(s: &tonic::Status, names: &Names, tls: bool) -> Error {
        if let Some(e) = tls_mismatch(s, names, tls) {
            return e;
        }
        match s.code() {
            tonic::Code::Unauthenticated => Error::Unauthenticated {
                message: s.message().to_string(),
                hint: names.credentials_hint,
            },
            tonic::Code::PermissionDenied => Error::PermissionDenied(s.message().to_string()),
            code => Error::Status {
                code,
                message: s.message().to_string(),
            },
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Error::InvalidUrl { .. }
            | Error::ReadFile { .. }
            | Error::IncompleteIdentity { .. }
            | Error::Tls(_)
            | Error::InvalidCredential(_)
            | Error::TlsMismatch { .. } => Kind::Config,
            Error::Connect { .. } => Kind::Unreachable,
            Error::Unauthenticated { .. } | Error::PermissionDenied(_) => Kind::Refused,
            Error::Status { code, .. } => match code {
                tonic::Code::Unavailable => Kind::Unreachable,
                tonic::Code::NotFound => Kind::Refused,
                _ => Kind::Server,
            },
        }
    }

    /// `triton-video`'s exit codes: 2 for a configuration mistake, 3 when the server is
    /// unreachable, refuses, or fails.
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            Kind::Config => 2,
            Kind::Unreachable | Kind::Refused | Kind::Server => 3,
        }
    }
}

/// A TLS connection that failed inside the handshake without a TLS alert (the peer reset it,
/// closed it, or answered bytes that are not TLS): most likely a plaintext server.
pub(crate) fn tls_handshake_failed(chain: &str, tls: bool, n: &Names) -> Option<Error> {
    let lower = chain.to_lowercase();
    let not_tls = [
        "reset by peer",
        "tls handshake eof",
        "invalidcontenttype",
        "corrupt message",
        "invalidmessage",
    ];
    (tls && !lower.contains("alert") && not_tls.iter().any(|m| lower.contains(m))).then(|| {
        Error::TlsMismatch {
            what: "the server did not complete a TLS handshake (it may speak plaintext)",
            hint: format!(
                "if it does, use an http:// address in {} and no TLS files",
                n.url
            ),
        }
    })
}

/// What a TLS alert or an HTTP/2 protocol error in a status's source chain means.
fn tls_mismatch(s: &tonic::Status, n: &Names, tls: bool) -> Option<Error> {
    let chain = error_chain(s);
    let (what, hint) = if chain.contains("CertificateRequired") {
        (
            "the server requires a client certificate (mTLS)",
            format!("set {} and {}", n.tls_cert, n.tls_key),
        )
    } else if ["UnknownCA", "BadCertificate", "CertificateUnknown"]
        .iter()
        .any(|a| chain.contains(a))
    {
        (
            "the server refused the client certificate (not signed by a CA it trusts)",
            format!(
                "use a certificate and key from the server's client CA in {} and {}",
                n.tls_cert, n.tls_key
            ),
        )
    } else if tls
        && matches!(s.code(), tonic::Code::Unknown | tonic::Code::Cancelled)
        && [
            "broken pipe",
            "connection reset",
            "connection closed",
            "operation was canceled",
        ]
        .iter()
        .any(|e| chain.to_lowercase().contains(e))
    {
        (
            "the server closed the connection right after the handshake (it may have refused the client certificate)",
            format!(
                "if it requires mTLS, use a certificate and key from its client CA in {} and {}",
                n.tls_cert, n.tls_key
            ),
        )
    } else if (s.code() == tonic::Code::Internal && s.message().contains("h2 protocol error"))
        || s.message().contains("this port speaks TLS")
        || chain.contains("this port speaks TLS")
    {
        (
            "the server did not answer as plaintext HTTP/2 (it may speak TLS)",
            format!(
                "if it does, use an https:// address in {} (and {} for a private CA)",
                n.url, n.tls_ca
            ),
        )
    } else {
        return None;
    };
    Some(Error::TlsMismatch { what, hint })
}

/// Whether a call's status says the connection died under it (the server was killed or
/// restarted), as tonic reports that: `Unknown` "transport error ...", or `Cancelled` that is not
/// tonic's own deadline ("Timeout expired").
pub fn connection_lost(s: &tonic::Status) -> bool {
    (s.code() == tonic::Code::Unknown && s.message().starts_with("transport error"))
        || (s.code() == tonic::Code::Cancelled && !s.message().contains("Timeout expired"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_told_from_a_deadline_and_other_errors() {
        use tonic::{Code, Status};
        assert!(connection_lost(&Status::unknown(
            "transport error: connection reset"
        )));
        assert!(connection_lost(&Status::cancelled(
            "h2 protocol error: stream reset"
        )));
        assert!(!connection_lost(&Status::cancelled("Timeout expired")));
        assert!(!connection_lost(&Status::unknown(
            "model said no; transport error"
        )));
        assert!(!connection_lost(&Status::new(
            Code::Internal,
            "transport error"
        )));
        assert!(!connection_lost(&Status::unavailable("transport error")));
    }

    #[test]
    fn statuses_map_to_kinds_and_exit_codes() {
        let n = Names::ELEMENT;
        let e = Error::from_status(&tonic::Status::unauthenticated("no key"), &n);
        assert_eq!(
            e.to_string(),
            format!("authentication failed (no key); {}", n.credentials_hint)
        );
        assert_eq!(e.kind(), Kind::Refused);
        assert_eq!(e.exit_code(), 3);
        let e = Error::from_status(&tonic::Status::permission_denied("model x"), &n);
        assert_eq!(e.to_string(), "permission denied: model x");
        assert_eq!(e.kind(), Kind::Refused);
        let e = Error::from_status(&tonic::Status::not_found("m"), &n);
        assert_eq!(e.kind(), Kind::Refused);
        let e = Error::from_status(&tonic::Status::unavailable("down"), &n);
        assert_eq!(e.kind(), Kind::Unreachable);
        assert_eq!(e.to_string(), "Unavailable: down");
        let e = Error::from_status(&tonic::Status::internal("boom"), &n);
        assert_eq!(e.kind(), Kind::Server);
        assert_eq!(e.exit_code(), 3);
        let e = Error::Connect {
            url: "a:1".into(),
            detail: "refused".into(),
        };
        assert_eq!(e.kind(), Kind::Unreachable);
        assert_eq!(e.to_string(), "cannot connect to a:1: refused");
        assert_eq!(Error::InvalidCredential("api-key").exit_code(), 2);
    }

    #[test]
    fn tls_mismatches_are_explained_with_the_settings_to_change() {
        let n = Names::ELEMENT;
        let with_source = |msg: &str, alert: &str| {
            let mut s = tonic::Status::unknown(msg.to_string());
            s.set_source(std::sync::Arc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("received fatal alert: {alert}"),
            )));
            s
        };
        let e = Error::from_status(&with_source("transport error", "CertificateRequired"), &n);
        assert_eq!(
            e.to_string(),
            "TLS: the server requires a client certificate (mTLS); set tls-cert-file and tls-key-file"
        );
        assert_eq!(e.kind(), Kind::Config);
        let e = Error::from_status(&with_source("transport error", "UnknownCA"), &Names::RUNNER);
        assert!(
            e.to_string().starts_with(
                "TLS: the server refused the client certificate (not signed by a CA it trusts)"
            ) && e.to_string().ends_with("TLS_CERT_FILE and TLS_KEY_FILE"),
            "{e}"
        );
        let e = Error::from_status(
            &tonic::Status::internal("h2 protocol error: http2 error"),
            &n,
        );
        assert_eq!(
            e.to_string(),
            "TLS: the server did not answer as plaintext HTTP/2 (it may speak TLS); if it does, use an https:// address in url (and tls-ca-file for a private CA)"
        );
        // A connection closed under the request: a likely refusal over TLS, nothing more in
        // plain text.
        let mut closed = tonic::Status::unknown("transport error");
        closed.set_source(std::sync::Arc::new(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "stream closed because of a broken pipe",
        )));
        let e = Error::from_status_on(&closed, &n, true);
        assert!(
            e.to_string()
                .starts_with("TLS: the server closed the connection right after the handshake (it may have refused the client certificate)"),
            "{e}"
        );
        assert!(matches!(
            Error::from_status_on(&closed, &n, false),
            Error::Status { .. }
        ));
        // The same refusal when the request loses the race to hyper's cancellation (seen in CI:
        // "operation was canceled" and nothing else).
        let canceled = tonic::Status::cancelled("operation was canceled");
        assert!(
            Error::from_status_on(&canceled, &n, true)
                .to_string()
                .contains("it may have refused the client certificate")
        );
        // triton-proxy's GOAWAY to a plaintext client on its TLS port.
        let mut goaway = tonic::Status::unavailable("connection error");
        goaway.set_source(std::sync::Arc::new(std::io::Error::other(
            "connection error received: this port speaks TLS: use an https:// address",
        )));
        assert!(
            Error::from_status(&goaway, &n)
                .to_string()
                .contains("use an https:// address in url")
        );
        // A TLS handshake the server reset or answered in plaintext.
        for chain in [
            "transport error: Connection reset by peer (os error 104)",
            "transport error: tls handshake eof",
            "received corrupt message of type InvalidContentType",
        ] {
            let e = tls_handshake_failed(chain, true, &n).expect(chain);
            assert!(
                e.to_string().contains("use an http:// address in url"),
                "{e}"
            );
            assert_eq!(e.kind(), Kind::Config);
            assert!(tls_handshake_failed(chain, false, &n).is_none());
        }
        assert!(tls_handshake_failed("received fatal alert: UnknownCA", true, &n).is_none());
        assert!(tls_handshake_failed("Connection refused (os error 111)", true, &n).is_none());
        // Anything else stays what it was.
        let e = Error::from_status(&with_source("transport error", "DecodeError"), &n);
        assert!(
            matches!(
                e,
                Error::Status {
                    code: tonic::Code::Unknown,
                    ..
                }
            ),
            "{e}"
        );
    }
}
