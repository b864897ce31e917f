//! `herald token`: mint a JWT for a hub (development and scripts; production tokens come from
//! your own auth service, signed with the same key).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use herald_hub::topic::TopicPattern;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Arguments of `herald token`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Sign with this HS256 secret (the hub's --jwt-secret).
    #[arg(
        long,
        env = "HERALD_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "private_key"
    )]
    secret: Option<String>,
    /// Sign with this PEM private key (RSA: RS256, EC P-256: ES256, unless --alg).
    #[arg(long, value_name = "FILE")]
    private_key: Option<PathBuf>,
    /// Algorithm with --private-key: RS256, RS384, RS512, ES256 or ES384.
    #[arg(long, value_name = "ALG", requires = "private_key")]
    alg: Option<String>,
    /// A topic pattern the token may publish to (repeatable), e.g. 'chat/*'.
    #[arg(long, value_name = "PATTERN")]
    publish: Vec<String>,
    /// A topic pattern whose private events the token may receive (repeatable), e.g. '**'.
    #[arg(long, value_name = "PATTERN")]
    subscribe: Vec<String>,
    /// How long the token is valid (e.g. 90s, 15m, 1h).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// The token's subject (`sub`): who it is for; publish rates are counted per subject.
    #[arg(long)]
    subject: Option<String>,
}

/// 1 s: the shortest token lifetime, since `exp` is in whole seconds.
const MIN_TTL: Duration = Duration::from_secs(1);
/// 3650 days: ten years; a longer-lived token is one nobody will rotate (rotate the key instead).
const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// A token lifetime: a duration (see [`crate::duration`]) from [`MIN_TTL`] to [`MAX_TTL`].
fn parse_ttl(s: &str) -> Result<Duration, String> {
    crate::range::duration(MIN_TTL, MAX_TTL)(s)
}

fn check_patterns(flag: &str, patterns: &[String]) -> anyhow::Result<()> {
    for p in patterns {
        TopicPattern::try_new(p).map_err(|e| anyhow::anyhow!("--{flag} {p:?}: {e}"))?;
    }
    Ok(())
}

/// What `herald token` says when it has no key to sign with: both ways to give one (clap's own
/// "required argument --secret" named only the flag, which also shows the secret in `ps`).
const NO_KEY: &str = "herald token needs a key to sign with: set HERALD_JWT_SECRET to the hub's \
--jwt-secret (e.g. export HERALD_JWT_SECRET=\"$(head -c 32 /dev/urandom | base64)\" before \
starting both; --secret works too but shows in `ps`), or give --private-key FILE for a hub started \
with --jwt-public-key";

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.secret.is_none() && args.private_key.is_none() {
        eprintln!("herald: {NO_KEY}");
        return Ok(ExitCode::from(crate::USAGE_ERROR));
    }
    // (clap's `requires` does not fire while --secret, which conflicts with --private-key, is set.)
    anyhow::ensure!(
        args.alg.is_none() || args.private_key.is_some(),
        "--alg needs --private-key (an HS256 --secret has no other algorithm)"
    );
    check_patterns("publish", &args.publish)?;
    check_patterns("subscribe", &args.subscribe)?;
    let (alg, key) = match (&args.secret, &args.private_key) {
        (Some(secret), _) => {
            anyhow::ensure!(
                secret.len() >= herald_hub::auth::MIN_SECRET_LEN,
                "the secret (--secret or HERALD_JWT_SECRET) must be at least {} bytes, like the \
                 hub's --jwt-secret; make one with: head -c 32 /dev/urandom | base64",
                herald_hub::auth::MIN_SECRET_LEN
            );
            (
                Algorithm::HS256,
                EncodingKey::from_secret(secret.as_bytes())?,
            )
        }
        (None, Some(path)) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("--private-key: reading {}", path.display()))?;
            let asked = args.alg.as_deref().map(str::to_ascii_uppercase);
            match asked.as_deref() {
                None | Some("RS256" | "RS384" | "RS512") => {
                    if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
                        let alg = asked.as_deref().unwrap_or("RS256").parse()?;
                        (alg, key)
                    } else if asked.is_none()
                        && let Ok(key) = EncodingKey::from_ec_pem(&pem)
                    {
                        (Algorithm::ES256, key)
                    } else {
                        anyhow::bail!(
                            "--private-key {}: not a PEM RSA or EC private key{}",
                            path.display(),
                            asked.map(|a| format!(" for {a}")).unwrap_or_default()
                        );
                    }
                }
                Some(a @ ("ES256" | "ES384")) => {
                    let key = EncodingKey::from_ec_pem(&pem).with_context(|| {
                        format!(
                            "--private-key {}: not a PEM EC private key for {a}",
                            path.display()
                        )
                    })?;
                    (a.parse()?, key)
                }
                Some(other) => {
                    anyhow::bail!("--alg {other:?}: use RS256, RS384, RS512, ES256 or ES384")
                }
            }
        }
        // Answered at the top with `NO_KEY`.
        (None, None) => anyhow::bail!("{NO_KEY}"),
    };
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "herald": { "publish": args.publish, "subscribe": args.subscribe },
        "iat": now,
        "exp": now + args.ttl.as_secs(),
    });
    if let Some(sub) = &args.subject {
        claims["sub"] = sub.as_str().into();
    }
    let token = jsonwebtoken::encode(&Header::new(alg), &claims, &key).context("signing")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "0s",
            "500ms",
            "",
            "1y",
            "-1h",
            "1.5h",
            "3651d",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
