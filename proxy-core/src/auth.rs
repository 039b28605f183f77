//! Client authentication: `x-domino-api-key: <key>` or `authorization: Bearer <token>`.
//!
//! Credentials come from `GRPC_EXPECT_API_KEY`, `GRPC_EXPECT_BEARER` and `PROXY_KEYS_FILE` (many keys,
//! each optionally limited to some models). Comparison is constant-time; no secret is ever logged
//! or echoed.

use std::path::Path;
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;

/// The message of every authentication failure: names the accepted headers, never a value.
pub const UNAUTHENTICATED_MSG: &str = "missing or invalid credentials: send header 'x-domino-api-key: <key>' \
     or 'authorization: Bearer <token>'";

/// One accepted credential.
#[derive(Clone)]
struct Credential {
    secret: Vec<u8>,
    /// Which header may carry it.
    kind: Kind,
    /// `None` = every model.
    models: Option<Vec<String>>,
    /// Triton request parameters its packets may set (`*`: any).
    params: Vec<String>,
    /// A name safe to log (position in the file, or the env var's name).
    label: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ApiKey,
    Bearer,
    /// Keys-file entries are accepted in either header.
    Any,
}

/// What an admitted client may do.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Loggable name of the credential used (never the secret).
    pub label: String,
    /// `None` = any model.
    pub models: Option<Vec<String>>,
    /// Triton request parameters its packets may set (`*`: any; empty: none).
    pub params: Vec<String>,
    /// The keys-file secret it was admitted with (to find it again after a reload); `None` for
    /// the fixed credentials, which a reload cannot change.
    secret: Option<Secret>,
}

/// A secret kept to compare with; printed as `<secret>`, never as its bytes.
#[derive(Clone)]
struct Secret(Arc<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl Principal {
    /// Whether this client may set the Triton request parameter `name`.
    pub fn may_set(&self, name: &str) -> bool {
        self.params.iter().any(|p| p == "*" || p == name)
    }

    /// Whether this client may call `model`.
    pub fn may_use(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }
}

/// The set of accepted credentials; cheap to clone, reloadable.
#[derive(Clone)]
pub struct Authenticator {
    fixed: Vec<Credential>,
    file: Arc<RwLock<Vec<Credential>>>,
    allow_unauthenticated: bool,
}

/// Errors reading a keys file; they name the line, never its content.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    #[error("PROXY_KEYS_FILE {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("PROXY_KEYS_FILE {path} line {line}: {reason}")]
    Syntax {
        path: String,
        line: usize,
        reason: &'static str,
    },
}

impl Authenticator {
    /// Builds the authenticator. `keys_file` entries are read now.
    pub fn new(
        api_key: Option<&str>,
        bearer: Option<&str>,
        keys_file: Option<&Path>,
        allow_unauthenticated: bool,
    ) -> Result<Authenticator, KeysFileError> {
        let mut fixed = Vec::new();
        if let Some(k) = api_key.filter(|k| !k.is_empty()) {
            fixed.push(Credential {
                secret: k.as_bytes().to_vec(),
                kind: Kind::ApiKey,
                models: None,
                params: Vec::new(),
                label: "GRPC_EXPECT_API_KEY".into(),
            });
        }
        if let Some(k) = bearer.filter(|k| !k.is_empty()) {
            fixed.push(Credential {
                secret: k.as_bytes().to_vec(),
                kind: Kind::Bearer,
                models: None,
                params: Vec::new(),
                label: "GRPC_EXPECT_BEARER".into(),
            });
        }
        let file = match keys_file {
            Some(p) => parse_keys_file(p)?,
            None => Vec::new(),
        };
        Ok(Authenticator {
            fixed,
            file: Arc::new(RwLock::new(file)),
            allow_unauthenticated,
        })
    }

    /// The Triton request parameters the fixed credentials (`GRPC_EXPECT_API_KEY`,
    /// `GRPC_EXPECT_BEARER`) may set (`PROXY_ALLOWED_PARAMETERS`); by default none.
    pub fn with_fixed_parameters(mut self, params: &[String]) -> Self {
        for c in &mut self.fixed {
            c.params = params.to_vec();
        }
        self
    }

    /// Whether any credential is configured.
    pub fn has_credentials(&self) -> bool {
        !self.fixed.is_empty() || !self.file.read().map(|f| f.is_empty()).unwrap_or(true)
    }

    /// Re-reads the keys file; on error the old keys stay in force.
    pub fn reload(&self, keys_file: &Path) -> Result<usize, KeysFileError> {
        let new = parse_keys_file(keys_file)?;
        let n = new.len();
        if let Ok(mut f) = self.file.write() {
            *f = new;
        }
        Ok(n)
    }

    /// Checks the request headers.
    pub fn check(&self, md: &MetadataMap) -> Result<Principal, tonic::Status> {
        let api_key = md
            .get("x-domino-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let bearer = md
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_bearer);
        let file = self.file.read().map(|f| f.clone()).unwrap_or_default();
        let mut found: Option<&Credential> = None;
        // Compare against every credential (no early exit) so timing does not reveal which matched.
        for c in self.fixed.iter().chain(file.iter()) {
            let mut hit = false;
            if matches!(c.kind, Kind::ApiKey | Kind::Any)
                && let Some(k) = api_key
            {
                hit |= bool::from(k.as_bytes().ct_eq(&c.secret));
            }
            if matches!(c.kind, Kind::Bearer | Kind::Any)
                && let Some(t) = bearer
            {
                hit |= bool::from(t.as_bytes().ct_eq(&c.secret));
            }
            if hit && found.is_none() {
                found = Some(c);
            }
        }
        match found {
            Some(c) => Ok(Principal {
                label: c.label.clone(),
                models: c.models.clone(),
                params: c.params.clone(),
                secret: (c.kind == Kind::Any).then(|| Secret(c.secret.as_slice().into())),
            }),
            None if self.allow_unauthenticated && !self.has_credentials() => Ok(Principal {
                label: "unauthenticated".into(),
                models: None,
                params: Vec::new(),
                secret: None,
            }),
            None => Err(tonic::Status::unauthenticated(UNAUTHENTICATED_MSG)),
        }
    }

    /// An admitted client as the keys in force now see it (after a reload): the same, with its
    /// key's current model list, or `None` when its key was removed (revoked). Clients of the
    /// fixed credentials are never revoked.
    pub fn recheck(&self, p: &Principal) -> Option<Principal> {
        let Some(secret) = &p.secret else {
            return Some(p.clone());
        };
        let file = self.file.read().map(|f| f.clone()).unwrap_or_default();
        let mut found: Option<&Credential> = None;
        for c in &file {
            if bool::from(c.secret.as_slice().ct_eq(&secret.0)) && found.is_none() {
                found = Some(c);
            }
        }
        found.map(|c| Principal {
            label: c.label.clone(),
            models: c.models.clone(),
            params: c.params.clone(),
            secret: p.secret.clone(),
        })
    }
}

/// Whether two secrets are equal, compared in constant time.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// `Bearer <token>`: the scheme is case-insensitive (RFC 7235), surrounding spaces are ignored.
fn parse_bearer(v: &str) -> Option<&str> {
    let v = v.trim();
    let (scheme, rest) = v.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Keys file: one key per line, then optionally, separated by whitespace, the models it may use
/// (`models=a,b`, or the list alone, as before) and the Triton request parameters its packets
/// may set (`params=a,b`; `*` for any; none by default). `#` starts a comment; blank lines are
/// ignored.
fn parse_keys_file(path: &Path) -> Result<Vec<Credential>, KeysFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let list = |m: &str| -> Vec<String> {
        m.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let syntax = |reason| KeysFileError::Syntax {
            path: path.display().to_string(),
            line: i + 1,
            reason,
        };
        let mut parts = line.split_whitespace();
        let key = parts.next().unwrap_or_default();
        let (mut models, mut params) = (None, None);
        for (n, word) in parts.enumerate() {
            let slot = match word.split_once('=') {
                Some(("models", v)) => (&mut models, v),
                Some(("params", v)) => (&mut params, v),
                Some(_) => return Err(syntax(UNKNOWN_FIELD)),
                None if n == 0 => (&mut models, word),
                None => return Err(syntax(KEYS_LINE)),
            };
            if slot.0.replace(list(slot.1)).is_some() {
                return Err(syntax(KEYS_LINE));
            }
        }
        out.push(Credential {
            secret: key.as_bytes().to_vec(),
            kind: Kind::Any,
            models,
            params: params.unwrap_or_default(),
            label: format!("keys-file line {}", i + 1),
        });
    }
    Ok(out)
}

const KEYS_LINE: &str = "expected '<key> [models=a,b] [params=p,q]' (lists comma-separated, no \
     spaces; a list alone is the models)";
const UNKNOWN_FIELD: &str = "unknown field; expected '<key> [models=a,b] [params=p,q]'";

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn api_key_and_bearer() {
        let a = Authenticator::new(Some("k1"), Some("t1"), None, false).unwrap();
        assert!(a.check(&md(&[("x-domino-api-key", "k1")])).is_ok());
        assert!(a.check(&md(&[("authorization", "Bearer t1")])).is_ok());
        assert!(a.check(&md(&[("authorization", "bearer   t1  ")])).is_ok());
        assert!(a.check(&md(&[("authorization", "BEARER t1")])).is_ok());
        let e = a.check(&md(&[("x-domino-api-key", "t1")])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(!e.message().contains("t1"));
        assert!(a.check(&md(&[("authorization", "Bearer k1")])).is_err());
        assert!(a.check(&md(&[("authorization", "Basic t1")])).is_err());
        assert!(a.check(&md(&[("authorization", "Bearert1")])).is_err());
        assert!(a.check(&md(&[])).is_err());
    }

    #[test]
    fn unauthenticated_mode_only_without_credentials() {
        let open = Authenticator::new(None, None, None, true).unwrap();
        assert!(open.check(&md(&[])).is_ok());
        let closed = Authenticator::new(Some("k"), None, None, true).unwrap();
        assert!(closed.check(&md(&[])).is_err());
    }

    #[test]
    fn keys_file_with_models_and_reload() {
        let p = std::env::temp_dir().join(format!("keys-{}", std::process::id()));
        std::fs::write(&p, "# comment\nalpha shapes_nms,identity\nbeta\n").unwrap();
        let a = Authenticator::new(None, None, Some(&p), false).unwrap();
        let pa = a.check(&md(&[("x-domino-api-key", "alpha")])).unwrap();
        assert!(pa.may_use("identity") && !pa.may_use("shapes_yolov8"));
        let pb = a.check(&md(&[("authorization", "Bearer beta")])).unwrap();
        assert!(pb.may_use("anything"));
        std::fs::write(&p, "gamma\n").unwrap();
        assert_eq!(a.reload(&p).unwrap(), 1);
        assert!(a.check(&md(&[("x-domino-api-key", "alpha")])).is_err());
        assert!(a.check(&md(&[("x-domino-api-key", "gamma")])).is_ok());
        std::fs::write(&p, "bad line here\n").unwrap();
        let err = a.reload(&p).unwrap_err().to_string();
        assert!(err.contains("line 1") && !err.contains("bad"), "{err}");
        assert!(
            a.check(&md(&[("x-domino-api-key", "gamma")])).is_ok(),
            "old keys stay on error"
        );
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(secret_eq(b"s3cret", b"s3cret"));
        assert!(!secret_eq(b"s3cret", b"s3cre"));
        assert!(!secret_eq(b"s3cret", b"s3creT"));
        assert!(!secret_eq(b"", b"x"));
    }

    #[test]
    fn parameters_are_allowed_per_key_and_none_by_default() {
        let p = std::env::temp_dir().join(format!("keys-params-{}", std::process::id()));
        std::fs::write(
            &p,
            "plain\nold a,b\nboth models=a params=priority,delay_ms\nany params=*\n",
        )
        .unwrap();
        let a = Authenticator::new(Some("fixed"), None, Some(&p), false).unwrap();
        let who = |k: &str| a.check(&md(&[("x-domino-api-key", k)])).unwrap();
        assert!(!who("plain").may_set("priority"), "none by default");
        assert!(who("plain").may_use("anything"));
        assert!(
            who("old").may_use("b") && !who("old").may_use("c"),
            "the list alone"
        );
        let both = who("both");
        assert!(both.may_use("a") && !both.may_use("b"));
        assert!(both.may_set("priority") && both.may_set("delay_ms"));
        assert!(!both.may_set("sequence_id"));
        assert!(who("any").may_set("sequence_id"));
        assert!(
            !who("fixed").may_set("priority"),
            "fixed keys: none by default"
        );
        let a = a.with_fixed_parameters(&["priority".into()]);
        let fixed = a.check(&md(&[("x-domino-api-key", "fixed")])).unwrap();
        assert!(fixed.may_set("priority") && !fixed.may_set("delay_ms"));
        for bad in [
            "k a b",
            "k models=a models=b",
            "k colour=red",
            "k params=a a",
        ] {
            std::fs::write(&p, format!("{bad}\n")).unwrap();
            let e = Authenticator::new(None, None, Some(&p), false)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("line 1") && e.contains("expected"), "{bad}: {e}");
            assert!(!e.contains(" k "), "the key is echoed: {e}");
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_reload_revokes_removed_keys_and_changes_model_lists() {
        let p = std::env::temp_dir().join(format!("keys-recheck-{}", std::process::id()));
        std::fs::write(
            &p,
            "alpha shapes_nms
beta
",
        )
        .unwrap();
        let a = Authenticator::new(Some("fixed"), None, Some(&p), false).unwrap();
        let alpha = a.check(&md(&[("x-domino-api-key", "alpha")])).unwrap();
        let beta = a.check(&md(&[("x-domino-api-key", "beta")])).unwrap();
        let fixed = a.check(&md(&[("x-domino-api-key", "fixed")])).unwrap();
        assert!(!format!("{alpha:?}").contains("alpha"), "{alpha:?}");
        assert!(format!("{alpha:?}").contains("<secret>"), "{alpha:?}");
        assert!(a.recheck(&alpha).is_some(), "nothing changed yet");
        // alpha moves to line 2 with another model; beta is removed.
        std::fs::write(&p, "# moved\nalpha identity\n").unwrap();
        a.reload(&p).unwrap();
        let alpha2 = a.recheck(&alpha).expect("alpha is still a key");
        assert!(alpha2.may_use("identity") && !alpha2.may_use("shapes_nms"));
        assert_eq!(alpha2.label, "keys-file line 2");
        assert!(a.recheck(&beta).is_none(), "beta was removed: revoked");
        assert!(
            a.recheck(&fixed).is_some(),
            "a fixed credential is never revoked"
        );
        std::fs::remove_file(p).unwrap();
    }
}
