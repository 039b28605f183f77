//! One client endpoint for every gst-triton client: `tritoninfer`, the `triton-video` preflight and
//! `triton-proxy --health-check`.
//!
//! * [`normalize_url`]: `host:port` becomes `http://host:port`.
//! * [`Target`]: address + TLS files → a connected [`Channel`], with one error per mistake.
//! * [`Auth`]: a tonic client interceptor that adds `x-domino-api-key` / `authorization: Bearer`.
//! * [`Error`]: the typed error all of them return; [`Error::exit_code`] maps it to the runner's
//!   exit codes.
//!
//! Messages name the setting the user has to change, in the caller's vocabulary ([`Names`]):
//! element properties (`tls-ca-file`) or environment variables (`TLS_CA_FILE`). Secrets never
//! appear in an error, a log line or `Debug` output.

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

mod error;
pub mod redact;

pub use error::{Error, Kind, connection_lost};

/// The names of the settings, as the user of a given program spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    pub url: &'static str,
    pub tls_ca: &'static str,
    pub tls_cert: &'static str,
    pub tls_key: &'static str,
    pub api_key: &'static str,
    pub bearer_token: &'static str,
    /// What to do when the server refuses the credentials.
    pub credentials_hint: &'static str,
}

impl Names {
    /// `tritoninfer`'s properties.
    pub const ELEMENT: Names = Names {
        url: "url",
        tls_ca: "tls-ca-file",
        tls_cert: "tls-cert-file",
        tls_key: "tls-key-file",
        api_key: "api-key",
        bearer_token: "bearer-token",
        credentials_hint: "set the api-key or bearer-token property (or the DOMINO_API_KEY / GRPC_BEARER_TOKEN environment variable)",
    };
    /// `triton-video`'s environment variables (the url name is the caller's: MM_ADDR or TRITON_URL).
    pub const RUNNER: Names = Names {
        url: "MM_ADDR",
        tls_ca: "TLS_CA_FILE",
        tls_cert: "TLS_CERT_FILE",
        tls_key: "TLS_KEY_FILE",
        api_key: "DOMINO_API_KEY",
        bearer_token: "GRPC_BEARER_TOKEN",
        credentials_hint: "set DOMINO_API_KEY or GRPC_BEARER_TOKEN",
    };
    /// `triton-proxy`'s own settings (its local health probe).
    pub const PROXY: Names = Names {
        url: "PROXY_PORT",
        tls_ca: "PROXY_TLS_CERT",
        tls_cert: "PROXY_TLS_CERT",
        tls_key: "PROXY_TLS_KEY",
        api_key: "GRPC_EXPECT_API_KEY",
        bearer_token: "GRPC_EXPECT_BEARER",
        credentials_hint: "health checks need no credentials",
    };
}

/// `host:port` → `http://host:port`; anything with a scheme is left as it is.
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// An address as it may be shown (in the user's spelling, without any user-info).
pub fn shown_url(url: &str) -> String {
    if url.contains("://") {
        redact::redacted(url)
    } else {
        let shown = redact::redacted(&normalize_url(url));
        shown.trim_start_matches("http://").to_string()
    }
}

/// TLS files, all optional; any of them (or an `https://` address) turns TLS on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// Server name to verify (default: the host of the address).
    pub domain: Option<String>,
}

/// A server to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// As the user gave it (`host:port` or `http[s]://host:port`).
    pub url: String,
    pub tls: Tls,
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive pings (also while idle); `None` sends none.
    pub keepalive: Option<Duration>,
    pub names: Names,
}

impl Target {
    pub fn new(url: impl Into<String>, names: Names) -> Target {
        Target {
            url: url.into(),
            tls: Tls::default(),
            connect_timeout: Duration::from_secs(3),
            keepalive: None,
            names,
        }
    }

    /// Whether the connection uses TLS.
    pub fn tls_enabled(&self) -> bool {
        normalize_url(&self.url).starts_with("https://")
            || self.tls.ca_file.is_some()
            || self.tls.cert_file.is_some()
            || self.tls.key_file.is_some()
    }

    /// The tonic endpoint, with TLS configured; reads the TLS files.
    pub fn endpoint(&self) -> Result<Endpoint, Error> {
        let n = &self.names;
        let mut ep = Endpoint::from_shared(normalize_url(&self.url))
            .map_err(|e| Error::InvalidUrl {
                field: n.url,
                value: shown_url(&self.url),
                reason: e.to_string(),
            })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_adaptive_window(true)
            // Answers of several MB arrive in 1 MiB DATA frames instead of 16 KiB ones.
            .max_frame_size(1 << 20);
        if let Some(k) = self.keepalive {
            ep = ep.http2_keep_alive_interval(k).keep_alive_while_idle(true);
        }
        if self.tls_enabled() {
            ep = ep
                .tls_config(self.tls_config()?)
                .map_err(|e| Error::Tls(e.to_string()))?;
        }
        Ok(ep)
    }

    fn tls_config(&self) -> Result<ClientTlsConfig, Error> {
        let n = &self.names;
        let read = |field: &'static str, path: &str| {
            std::fs::read(path).map_err(|source| Error::ReadFile {
                field,
                path: path.to_string(),
                source,
            })
        };
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.tls.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(n.tls_ca, ca)?));
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read(n.tls_cert, cert)?,
                    read(n.tls_key, key)?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(Error::IncompleteIdentity {
                    cert: n.tls_cert,
                    key: n.tls_key,
                });
            }
        }
        if let Some(d) = &self.tls.domain {
            tls = tls.domain_name(d.clone());
        }
        Ok(tls)
    }

    /// Connects now (within `connect_timeout`).
    pub async fn connect(&self) -> Result<Channel, Error> {
        self.endpoint()?.connect().await.map_err(|e| {
            let detail = error_chain(&e);
            match error::tls_handshake_failed(&detail, self.tls_enabled(), &self.names) {
                Some(mismatch) => mismatch,
                None => Error::Connect {
                    url: shown_url(&self.url),
                    detail: redact::scrub(&detail),
                },
            }
        })
    }

    /// A channel that connects on first use and reconnects by itself.
    pub fn connect_lazy(&self) -> Result<Channel, Error> {
        Ok(self.endpoint()?.connect_lazy())
    }
}

/// An error and all its sources, `: `-separated (tonic's transport errors hide the cause there).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Client credentials as a tonic interceptor: every request gets `x-domino-api-key` and/or
/// `authorization: Bearer …`. The values are marked sensitive and this type has no `Debug`.
#[derive(Clone, Default)]
pub struct Auth {
    api_key: Option<AsciiMetadataValue>,
    bearer: Option<AsciiMetadataValue>,
}

impl Auth {
    /// Empty strings count as unset.
    pub fn new(
        api_key: Option<&str>,
        bearer_token: Option<&str>,
        names: &Names,
    ) -> Result<Auth, Error> {
        let value = |field: &'static str, v: String| {
            let mut v: AsciiMetadataValue =
                v.parse().map_err(|_| Error::InvalidCredential(field))?;
            v.set_sensitive(true);
            Ok::<_, Error>(v)
        };
        Ok(Auth {
            api_key: api_key
                .filter(|k| !k.is_empty())
                .map(|k| value(names.api_key, k.to_string()))
                .transpose()?,
            bearer: bearer_token
                .filter(|t| !t.is_empty())
                .map(|t| value(names.bearer_token, format!("Bearer {t}")))
                .transpose()?,
        })
    }

    /// Whether any credential is set.
    pub fn is_set(&self) -> bool {
        self.api_key.is_some() || self.bearer.is_some()
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(k) = &self.api_key {
            req.metadata_mut().insert("x-domino-api-key", k.clone());
        }
        if let Some(b) = &self.bearer {
            req.metadata_mut().insert("authorization", b.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    /// The client's first SETTINGS frame lets the server send DATA frames of up to 1 MiB (a
    /// tensor answer in a few frames instead of hundreds of 16 KiB ones).
    #[tokio::test]
    async fn the_client_accepts_data_frames_of_one_mebibyte() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = tokio::spawn(async move { Target::new(url, Names::ELEMENT).connect().await });
        let (mut sock, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the client connected")
            .unwrap();
        // The connection preface, then a SETTINGS frame: a 9-byte header and 6-byte entries.
        let mut head = [0u8; 24 + 9];
        sock.read_exact(&mut head).await.unwrap();
        assert_eq!(&head[..24], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(head[24 + 3], 0x4, "a SETTINGS frame first");
        let len = u32::from_be_bytes([0, head[24], head[25], head[26]]) as usize;
        let mut body = vec![0u8; len];
        sock.read_exact(&mut body).await.unwrap();
        let max_frame = body
            .chunks(6)
            .find(|e| u16::from_be_bytes([e[0], e[1]]) == 0x5)
            .map(|e| u32::from_be_bytes([e[2], e[3], e[4], e[5]]));
        assert_eq!(max_frame, Some(1 << 20));
        client.abort();
    }

    #[test]
    fn urls_without_a_scheme_get_http() {
        assert_eq!(normalize_url("localhost:8001"), "http://localhost:8001");
        assert_eq!(normalize_url("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(normalize_url("https://a:1"), "https://a:1");
        assert_eq!(normalize_url("http://a:1"), "http://a:1");
    }

    #[test]
    fn tls_is_on_for_https_or_any_file() {
        let mut t = Target::new("a:1", Names::ELEMENT);
        assert!(!t.tls_enabled());
        t.url = "https://a:1".into();
        assert!(t.tls_enabled());
        let mut t = Target::new("a:1", Names::ELEMENT);
        t.tls.ca_file = Some("x".into());
        assert!(t.tls_enabled());
        let mut t = Target::new("a:1", Names::ELEMENT);
        t.tls.cert_file = Some("x".into());
        assert!(t.tls_enabled());
        let mut t = Target::new("a:1", Names::ELEMENT);
        t.tls.domain = Some("x".into());
        assert!(!t.tls_enabled(), "a domain alone does not turn TLS on");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let t = Target::new("http://bad host:1", Names::ELEMENT);
        let e = t.endpoint().unwrap_err();
        assert!(matches!(e, Error::InvalidUrl { field: "url", .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("url: 'http://bad host:1' is not a valid address")
        );
        assert_eq!(e.exit_code(), 2);

        // A malformed address is echoed without its user-info.
        let t = Target::new("op:Hidden-Pw@bad host:1", Names::ELEMENT);
        let e = t.endpoint().unwrap_err().to_string();
        assert!(
            e.starts_with("url: '***@bad host:1' is not a valid address"),
            "{e}"
        );
        let t = Target::new("https://op:Hidden-Pw@bad host:1", Names::ELEMENT);
        let e = t.endpoint().unwrap_err().to_string();
        assert!(!e.contains("Hidden-Pw"), "{e}");

        let mut t = Target::new("a:1", Names::RUNNER);
        t.tls.ca_file = Some("/no/such/ca.pem".into());
        let e = t.endpoint().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("TLS_CA_FILE: cannot read /no/such/ca.pem: "),
            "{e}"
        );
        assert_eq!(e.kind(), Kind::Config);

        let mut t = Target::new("a:1", Names::ELEMENT);
        t.tls.cert_file = Some("/c.pem".into());
        let e = t.endpoint().unwrap_err();
        assert_eq!(
            e.to_string(),
            "tls-cert-file and tls-key-file must be set together"
        );
        let mut t = Target::new("a:1", Names::ELEMENT);
        t.tls.key_file = Some("/k.pem".into());
        assert!(matches!(
            t.endpoint().unwrap_err(),
            Error::IncompleteIdentity { .. }
        ));
        // Both set: the files are read (here: the certificate is missing).
        let mut t = Target::new("a:1", Names::ELEMENT);
        t.tls.cert_file = Some("/no/c.pem".into());
        t.tls.key_file = Some("/no/k.pem".into());
        let e = t.endpoint().unwrap_err();
        assert!(
            matches!(
                e,
                Error::ReadFile {
                    field: "tls-cert-file",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn tls_without_any_file_is_fine() {
        // https:// alone: TLS with the system's defaults, no client identity.
        let t = Target::new("https://example.invalid:443", Names::ELEMENT);
        assert!(t.tls_enabled());
        t.endpoint().expect("https without files");
        let mut t = Target::new("http://a:1", Names::ELEMENT);
        t.tls.domain = Some("server".into());
        t.endpoint().expect("a domain without TLS is ignored");
    }

    #[test]
    fn the_interceptor_adds_both_headers_and_skips_empty_ones() {
        let mut a = Auth::new(Some("k1"), Some("t1"), &Names::ELEMENT).unwrap();
        assert!(a.is_set());
        let r = a.call(tonic::Request::new(())).unwrap();
        assert_eq!(r.metadata().get("x-domino-api-key").unwrap(), "k1");
        assert_eq!(r.metadata().get("authorization").unwrap(), "Bearer t1");

        let mut a = Auth::new(Some(""), None, &Names::ELEMENT).unwrap();
        assert!(!a.is_set());
        let r = a.call(tonic::Request::new(())).unwrap();
        assert!(r.metadata().get("x-domino-api-key").is_none());
        assert!(r.metadata().get("authorization").is_none());

        let mut a = Auth::new(None, Some("only"), &Names::ELEMENT).unwrap();
        assert!(a.is_set());
        assert!(
            Auth::new(Some("k"), None, &Names::ELEMENT)
                .unwrap()
                .is_set()
        );
        let r = a.call(tonic::Request::new(())).unwrap();
        assert!(r.metadata().get("x-domino-api-key").is_none());
        assert_eq!(r.metadata().get("authorization").unwrap(), "Bearer only");
    }

    #[test]
    fn a_credential_that_is_not_a_header_value_is_refused_without_echoing_it() {
        let e = Auth::new(Some("bad\nsecret"), None, &Names::RUNNER)
            .err()
            .expect("refused");
        assert_eq!(e.to_string(), "DOMINO_API_KEY: not a valid header value");
        let e = Auth::new(None, Some("x\u{7f}y"), &Names::ELEMENT)
            .err()
            .expect("refused");
        assert_eq!(e.to_string(), "bearer-token: not a valid header value");
        assert!(!format!("{e:?}").contains("x\u{7f}y"));
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Target::new(format!("127.0.0.1:{port}"), Names::ELEMENT);
        let e = t.connect().await.unwrap_err();
        assert_eq!(e.kind(), Kind::Unreachable, "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
            "{e}"
        );
        let t = Target::new(format!("op:Hidden-Pw@127.0.0.1:{port}"), Names::ELEMENT);
        let e = t.connect().await.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot connect to ***@127.0.0.1:{port}: ")),
            "{e}"
        );
        assert!(!e.contains("Hidden-Pw"), "{e}");
    }
}
