//! Authentication and authorization with JWT: who may publish to a topic, who may subscribe, and
//! who receives `private` events.
//!
//! An [`Authorizer`] holds one verification key and the one algorithm it accepts (pinned: a token
//! signed with any other algorithm, `none` included, is refused, which closes the classic
//! "HS256 token verified with the RSA public key as secret" confusion). A token carries
//!
//! ```json
//! {"herald": {"publish": ["chat/*"], "subscribe": ["chat/**"]}, "exp": 1767225600, "sub": "alice"}
//! ```
//!
//! Patterns use the syntax of [`crate::topic`]. `exp` is required and exact: a token is refused
//! from the instant the wall clock reaches `exp` (Unix seconds), so one whose `exp` is the current
//! second is already expired. `nbf` is honoured with a leeway of
//! [`LEEWAY_SECS`]. A request's token is taken from, in this order, the
//! `Authorization: Bearer` header, the [`TOKEN_COOKIE`] cookie, and the [`TOKEN_QUERY_PARAM`]
//! query parameter (browsers cannot set headers on `EventSource`; a URL ends up in logs, so the
//! cookie is the better choice there).
//!
//! ```
//! use herald_hub::auth::Authorizer;
//! let auth = Authorizer::hs256(b"a secret of at least thirty-two bytes!").unwrap();
//! assert_eq!(auth.algorithm().to_string(), "HS256");
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::ApiError;
use crate::topic::TopicPattern;

/// The cookie a browser can carry its token in (set it `HttpOnly; Secure; SameSite=Strict`).
pub const TOKEN_COOKIE: &str = "herald_token";
/// The query parameter that may carry a token (`?access_token=`): for clients that can set
/// neither a header nor a cookie. Its value is never logged by the hub.
pub const TOKEN_QUERY_PARAM: &str = "access_token";
/// Clock skew tolerated on `nbf`, in seconds: enough for hosts whose clocks differ a little.
pub const LEEWAY_SECS: u64 = 5;
/// Shortest accepted HS256 secret, in bytes: a shorter one can be brute-forced offline from any
/// one token (RFC 7518 asks for a key as long as the hash, 32 bytes).
pub const MIN_SECRET_LEN: usize = 32;
/// Most patterns in one token's `publish` or `subscribe` list: bounds the matching work per event.
pub const MAX_TOKEN_PATTERNS: usize = 64;

/// The signature algorithms a hub can pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 (a shared secret).
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RS384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
}

impl JwtAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, Self::RS256 | Self::RS384 | Self::RS512)
    }

    fn is_ec(self) -> bool {
        matches!(self, Self::ES256 | Self::ES384)
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl FromStr for JwtAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "HS256" => Self::HS256,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            _ => return Err(KeyError::UnknownAlgorithm(s.to_owned())),
        })
    }
}

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The HS256 secret is too short.
    #[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes (it is {0})")]
    SecretTooShort(usize),
    /// The PEM is neither an RSA nor an EC public key.
    #[error(
        "not a PEM RSA or EC public key (expected \"-----BEGIN PUBLIC KEY-----\" or \"-----BEGIN RSA PUBLIC KEY-----\")"
    )]
    NotAPublicKey,
    /// The algorithm does not fit the key.
    #[error("algorithm {alg} does not fit this key (a {key} key)")]
    AlgorithmMismatch {
        /// The algorithm asked for.
        alg: JwtAlgorithm,
        /// The key's kind.
        key: &'static str,
    },
    /// An algorithm name outside [`JwtAlgorithm`].
    #[error("unknown JWT algorithm {0:?}: use HS256, RS256, RS384, RS512, ES256 or ES384")]
    UnknownAlgorithm(String),
}

/// Why a request's token was refused (each a 401 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token in the request.
    #[error(
        "missing token: send \"Authorization: Bearer <token>\", the {TOKEN_COOKIE} cookie or the {TOKEN_QUERY_PARAM} query parameter"
    )]
    Missing,
    /// An `Authorization` header of another scheme.
    #[error("the Authorization header must be \"Bearer <token>\"")]
    NotBearer,
    /// Not three base64url parts with a JSON header.
    #[error("malformed token")]
    Malformed,
    /// `alg: none`.
    #[error("unsigned token (alg \"none\") refused")]
    Unsigned,
    /// Signed with another algorithm than the pinned one.
    #[error("token is signed with {got}, but this hub only accepts {want}")]
    WrongAlgorithm {
        /// The token's `alg`.
        got: String,
        /// The hub's pinned algorithm.
        want: JwtAlgorithm,
    },
    /// The signature does not verify with the hub's key.
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` is ahead.
    #[error("token not yet valid (nbf is in the future)")]
    NotYetValid,
    /// A required claim is absent.
    #[error("token has no {0:?} claim")]
    MissingClaim(String),
    /// A claim has the wrong shape.
    #[error("invalid token claims: {0}")]
    BadClaims(String),
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        let with_token = !matches!(err, TokenError::Missing);
        ApiError::unauthorized(err.to_string(), with_token)
    }
}

/// What a verified token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    publish: Box<[TopicPattern]>,
    subscribe: Box<[TopicPattern]>,
    /// `exp`, seconds since the Unix epoch.
    expires_at: u64,
    subject: Option<Box<str>>,
}

impl Grant {
    /// Whether the token may publish to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }

    /// The token's `subscribe` patterns: the private events it may receive.
    pub fn subscribe_patterns(&self) -> &[TopicPattern] {
        &self.subscribe
    }

    /// `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The `sub` claim, if any.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
}

struct Inner {
    key: DecodingKey,
    alg: JwtAlgorithm,
    validation: Validation,
}

/// Verifies tokens with one key and one pinned algorithm. Cheap to clone.
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key (a shared secret).
        f.debug_struct("Authorizer")
            .field("alg", &self.inner.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    herald: Option<HeraldClaims>,
    exp: u64,
    nbf: Option<u64>,
    sub: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeraldClaims {
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
}

fn patterns(list: Vec<String>, name: &str) -> Result<Box<[TopicPattern]>, TokenError> {
    if list.len() > MAX_TOKEN_PATTERNS {
        return Err(TokenError::BadClaims(format!(
            "at most {MAX_TOKEN_PATTERNS} {name} patterns"
        )));
    }
    list.iter()
        .map(|p| {
            TopicPattern::try_new(p)
                .map_err(|e| TokenError::BadClaims(format!("{name} pattern {p:?}: {e}")))
        })
        .collect()
}

impl Authorizer {
    fn with(key: DecodingKey, alg: JwtAlgorithm) -> Self {
        let mut validation = Validation::new(alg.jwt());
        // `exp` is exact: a stream ends at `exp` and its client must then need a fresh token,
        // not get a few more seconds with the old one. `nbf` gets the leeway (checked in
        // `verify`): a token minted on a host whose clock runs ahead is usable at once.
        // Both time claims are checked in `verify_at`, against one reading of the clock:
        // jsonwebtoken refuses only `exp < now`, which accepts a token for the whole of its `exp`
        // second. `exp` stays required through `Claims` (a missing or malformed one is a JSON
        // error, reported as such).
        validation.leeway = 0;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        // The hub has no audience of its own; `aud` in a token is not checked.
        validation.validate_aud = false;
        Self {
            inner: Arc::new(Inner {
                key,
                alg,
                validation,
            }),
        }
    }

    /// HS256 with a shared secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort(secret.len()));
        }
        let key = DecodingKey::from_secret(secret).map_err(|_| KeyError::NotAPublicKey)?;
        Ok(Self::with(key, JwtAlgorithm::HS256))
    }

    /// An RSA or EC public key in PEM. The algorithm is RS256 for an RSA key and ES256 for an EC
    /// key unless `alg` names another one of the same kind.
    pub fn from_public_key_pem(pem: &[u8], alg: Option<JwtAlgorithm>) -> Result<Self, KeyError> {
        let (key, kind, default) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (key, "RSA", JwtAlgorithm::RS256)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (key, "EC", JwtAlgorithm::ES256)
        } else {
            return Err(KeyError::NotAPublicKey);
        };
        let alg = alg.unwrap_or(default);
        let fits = if kind == "RSA" {
            alg.is_rsa()
        } else {
            alg.is_ec()
        };
        if !fits {
            return Err(KeyError::AlgorithmMismatch { alg, key: kind });
        }
        Ok(Self::with(key, alg))
    }

    /// The one algorithm this authorizer accepts.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.inner.alg
    }

    /// Verifies a token and returns what it allows.
    pub fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        self.verify_at(token, SystemTime::now())
    }

    /// [`Authorizer::verify`] as if the wall clock read `now` (tests use it to stand exactly on
    /// the `exp` boundary).
    fn verify_at(&self, token: &str, now: SystemTime) -> Result<Grant, TokenError> {
        self.check_header(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.key, &self.inner.validation)
            .map_err(|err| {
            use jsonwebtoken::errors::ErrorKind as K;
            match err.into_kind() {
                K::InvalidSignature => TokenError::BadSignature,
                K::InvalidAlgorithm => TokenError::WrongAlgorithm {
                    got: "another algorithm".into(),
                    want: self.inner.alg,
                },
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::MissingRequiredClaim(c) => TokenError::MissingClaim(c),
                K::InvalidClaimFormat(c) => {
                    TokenError::BadClaims(format!("{c:?} has the wrong type"))
                }
                K::Json(e) => {
                    if e.to_string().contains("missing field `exp`") {
                        TokenError::MissingClaim("exp".into())
                    } else {
                        TokenError::BadClaims(e.to_string())
                    }
                }
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        if is_expired(claims.exp, now) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > unix_secs(now).saturating_add(LEEWAY_SECS))
        {
            return Err(TokenError::NotYetValid);
        }
        let herald = claims
            .herald
            .ok_or_else(|| TokenError::MissingClaim("herald".into()))?;
        Ok(Grant {
            publish: patterns(herald.publish, "publish")?,
            subscribe: patterns(herald.subscribe, "subscribe")?,
            expires_at: claims.exp,
            subject: claims.sub.map(Into::into),
        })
    }

    /// Reads the header's `alg` before anything else, to say exactly why a token is refused.
    fn check_header(&self, token: &str) -> Result<(), TokenError> {
        let header = token.split('.').next().unwrap_or_default();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        #[derive(Deserialize)]
        struct Header {
            alg: Option<String>,
        }
        let header: Header = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        let got = header.alg.unwrap_or_default();
        if got.is_empty() || got.eq_ignore_ascii_case("none") {
            return Err(TokenError::Unsigned);
        }
        if got != self.inner.alg.to_string() {
            return Err(TokenError::WrongAlgorithm {
                got,
                want: self.inner.alg,
            });
        }
        Ok(())
    }
}

/// Whole seconds since the Unix epoch at `now` (0 for a clock set before 1970).
fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a token with this `exp` is expired at `now`: from the instant the wall clock reaches
/// `exp` seconds, i.e. `exp <= now` counted in whole seconds. The same rule ends an open stream
/// at the instant `exp` (see `sse.rs`), so a reconnection after that end is refused.
pub(crate) fn is_expired(exp: u64, now: SystemTime) -> bool {
    unix_secs(now) >= exp
}

/// The request's token, from the first source that has one: `Authorization: Bearer`, the
/// [`TOKEN_COOKIE`] cookie, then `query_token` (the [`TOKEN_QUERY_PARAM`] value).
pub(crate) fn token_of<'a>(
    headers: &'a HeaderMap,
    query_token: Option<&'a str>,
) -> Result<Option<&'a str>, TokenError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| TokenError::NotBearer)?;
        let (scheme, token) = value.split_once(' ').ok_or(TokenError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::NotBearer);
        }
        return Ok(Some(token.trim()));
    }
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, token)) = pair.trim().split_once('=')
                && name == TOKEN_COOKIE
            {
                return Ok(Some(token.trim_matches('"')));
            }
        }
    }
    Ok(query_token)
}

/// What a subscriber may see.
pub(crate) enum Subscriber {
    /// No token: public events only.
    Anonymous,
    /// A verified token.
    Token(Grant),
}

impl Authorizer {
    /// Authenticates a publish: a token is required.
    pub(crate) fn publisher(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Grant, TokenError> {
        match token_of(headers, query_token)? {
            Some(token) => self.verify(token),
            None => Err(TokenError::Missing),
        }
    }

    /// Authenticates a subscriber; without a token it is anonymous when `allow_anonymous` holds.
    /// A token that does not verify is refused, never treated as anonymous.
    pub(crate) fn subscriber(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        allow_anonymous: bool,
    ) -> Result<Subscriber, TokenError> {
        match token_of(headers, query_token)? {
            Some(token) => self.verify(token).map(Subscriber::Token),
            None if allow_anonymous => Ok(Subscriber::Anonymous),
            None => Err(TokenError::Missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn sign(claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(SECRET).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn good_claims() -> serde_json::Value {
        serde_json::json!({"herald": {"publish": ["chat/*"], "subscribe": ["chat/**"]}, "exp": now() + 60, "sub": "alice"})
    }

    #[test]
    fn verifies_a_good_token() {
        let auth = Authorizer::hs256(SECRET).unwrap();
        let grant = auth.verify(&sign(good_claims())).unwrap();
        assert!(grant.may_publish("chat/lobby"));
        assert!(!grant.may_publish("chat"));
        assert!(!grant.may_publish("admin/x"));
        assert_eq!(grant.subject(), Some("alice"));
        assert_eq!(grant.subscribe_patterns()[0].as_str(), "chat/**");
    }

    #[test]
    fn token_faults_say_why() {
        let auth = Authorizer::hs256(SECRET).unwrap();
        let t = now();
        let payload = b64(&good_claims().to_string());
        let cases: Vec<(String, TokenError)> = vec![
            ("not a token".into(), TokenError::Malformed),
            (
                format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
                TokenError::Unsigned,
            ),
            (
                format!("{}.{payload}.", b64(r#"{"typ":"JWT"}"#)),
                TokenError::Unsigned,
            ),
            (
                format!("{}.{payload}.c2ln", b64(r#"{"alg":"RS256"}"#)),
                TokenError::WrongAlgorithm {
                    got: "RS256".into(),
                    want: JwtAlgorithm::HS256,
                },
            ),
            (
                {
                    let other =
                        EncodingKey::from_secret(b"another secret of 32 bytes......").unwrap();
                    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good_claims(), &other)
                        .unwrap()
                },
                TokenError::BadSignature,
            ),
            (
                sign(serde_json::json!({"herald": {}, "exp": t - 60})),
                TokenError::Expired,
            ),
            (
                sign(serde_json::json!({"herald": {}, "exp": t + 600, "nbf": t + 300})),
                TokenError::NotYetValid,
            ),
            (
                sign(serde_json::json!({"herald": {}})),
                TokenError::MissingClaim("exp".into()),
            ),
            (
                sign(serde_json::json!({"exp": t + 60})),
                TokenError::MissingClaim("herald".into()),
            ),
        ];
        for (token, want) in cases {
            assert_eq!(auth.verify(&token), Err(want), "{token}");
        }
        for claims in [
            serde_json::json!({"herald": {"publish": "chat/*"}, "exp": t + 60}),
            serde_json::json!({"herald": {"publish": ["ch*t"]}, "exp": t + 60}),
            serde_json::json!({"herald": {"publsh": ["a"]}, "exp": t + 60}),
            serde_json::json!({"herald": {}, "exp": "tomorrow"}),
        ] {
            let err = auth.verify(&sign(claims.clone())).unwrap_err();
            assert!(matches!(err, TokenError::BadClaims(_)), "{claims}: {err:?}");
        }
        // `nbf` within the leeway passes (clock skew); `exp` has none.
        assert!(
            auth.verify(&sign(
                serde_json::json!({"herald": {}, "exp": t + 60, "nbf": t + 2})
            ))
            .is_ok()
        );
        assert_eq!(
            auth.verify(&sign(serde_json::json!({"herald": {}, "exp": t - 1}))),
            Err(TokenError::Expired)
        );
    }

    /// The issue-13 report: a token whose `exp` was the current second was accepted.
    #[test]
    fn a_token_is_expired_from_the_instant_the_clock_reaches_exp() {
        let auth = Authorizer::hs256(SECRET).unwrap();
        let exp = now() + 100;
        let token = sign(serde_json::json!({"herald": {}, "exp": exp}));
        let at = |secs: u64, millis: u64| {
            UNIX_EPOCH
                + std::time::Duration::from_secs(secs)
                + std::time::Duration::from_millis(millis)
        };
        assert!(auth.verify_at(&token, at(exp - 1, 0)).is_ok());
        assert!(
            auth.verify_at(&token, at(exp - 1, 999)).is_ok(),
            "1 ms before exp"
        );
        for (secs, millis) in [(exp, 0), (exp, 1), (exp, 999), (exp + 1, 0)] {
            assert_eq!(
                auth.verify_at(&token, at(secs, millis)).unwrap_err(),
                TokenError::Expired,
                "{secs}.{millis:03}"
            );
        }
        assert!(!is_expired(exp, at(exp - 1, 999)));
        assert!(is_expired(exp, at(exp, 0)));
        assert!(is_expired(0, UNIX_EPOCH), "a clock before 1970 reads as 0");
        // `nbf` is judged on the same clock, with its leeway.
        let early = sign(serde_json::json!({"herald": {}, "exp": exp, "nbf": exp - 50}));
        let leeway = exp - 50 - LEEWAY_SECS;
        assert!(auth.verify_at(&early, at(leeway, 0)).is_ok());
        assert_eq!(
            auth.verify_at(&early, at(leeway - 1, 999)).unwrap_err(),
            TokenError::NotYetValid
        );
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            Authorizer::hs256(b"short").unwrap_err(),
            KeyError::SecretTooShort(5)
        );
        assert_eq!(
            Authorizer::from_public_key_pem(b"nonsense", None).unwrap_err(),
            KeyError::NotAPublicKey
        );
        assert!("XS256".parse::<JwtAlgorithm>().is_err());
        assert_eq!("es256".parse::<JwtAlgorithm>(), Ok(JwtAlgorithm::ES256));
    }

    const RSA_PUBLIC: &[u8] = include_bytes!("../tests/fixtures/rsa_public.pem");
    const RSA_PRIVATE: &[u8] = include_bytes!("../tests/fixtures/rsa_private.pem");
    const EC_PUBLIC: &[u8] = include_bytes!("../tests/fixtures/ec_public.pem");
    const EC_PRIVATE: &[u8] = include_bytes!("../tests/fixtures/ec_private.pem");

    #[test]
    fn public_keys_pin_their_algorithm() {
        let rsa = Authorizer::from_public_key_pem(RSA_PUBLIC, None).unwrap();
        assert_eq!(rsa.algorithm(), JwtAlgorithm::RS256);
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good_claims(), &key);
        assert!(rsa.verify(&token.unwrap()).is_ok());
        // Algorithm confusion: an HS256 token whose "secret" is the public key itself.
        let forged = EncodingKey::from_secret(RSA_PUBLIC).unwrap();
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good_claims(), &forged);
        assert_eq!(
            rsa.verify(&token.unwrap()),
            Err(TokenError::WrongAlgorithm {
                got: "HS256".into(),
                want: JwtAlgorithm::RS256
            })
        );
        let ec = Authorizer::from_public_key_pem(EC_PUBLIC, None).unwrap();
        assert_eq!(ec.algorithm(), JwtAlgorithm::ES256);
        let key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &good_claims(), &key);
        assert!(ec.verify(&token.unwrap()).is_ok());
        // An RS256 token against the EC key, and an RS key asked to do ES256.
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good_claims(), &key);
        assert!(matches!(
            ec.verify(&token.unwrap()),
            Err(TokenError::WrongAlgorithm { .. })
        ));
        assert_eq!(
            Authorizer::from_public_key_pem(RSA_PUBLIC, Some(JwtAlgorithm::ES256)).unwrap_err(),
            KeyError::AlgorithmMismatch {
                alg: JwtAlgorithm::ES256,
                key: "RSA"
            }
        );
    }

    #[test]
    fn token_sources_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(&h, Some("q")), Ok(Some("q")));
        h.insert(COOKIE, HeaderValue::from_static("a=1; herald_token=c; b=2"));
        assert_eq!(token_of(&h, Some("q")), Ok(Some("c")));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(token_of(&h, Some("q")), Ok(Some("h")));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(token_of(&h, None), Err(TokenError::NotBearer));
        assert_eq!(token_of(&HeaderMap::new(), None), Ok(None));
    }
}
