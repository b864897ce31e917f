//! Credentials out of messages: the one redaction every crate applies before a URL goes into a log
//! line or an error message (a hub's `--redis-url`, a subscriber's or publisher's URL).
//!
//! It lives here, in the one crate the hub, the client and the CLI all depend on; it is plain text
//! work, with no URL parser, so that a URL too malformed to parse (the very one an error is about)
//! is redacted all the same.
//!
//! ```
//! use herald_wire::{redact_text, redact_url};
//!
//! assert_eq!(redact_url("redis://:hunter2@db:6379/0"), "redis://:***@db:6379/0");
//! assert_eq!(
//!     redact_url("http://hub/events?topic=a&access_token=eyJ"),
//!     "http://hub/events?topic=a&access_token=***"
//! );
//! assert_eq!(
//!     redact_text("error sending request for url (http://u:pw@h/p)"),
//!     "error sending request for url (http://u:***@h/p)"
//! );
//! ```
//!
//! What is hidden: the password of the userinfo (`user:***@`), a userinfo without a password
//! whole (`***@`: a lone userinfo is often a token, as in `https://TOKEN@host`), and the value of
//! every query parameter named [`SECRET_QUERY_KEYS`] (case-insensitive). Everything else stays,
//! so that the message still says which host and path it is about.

/// Query parameters whose values are secrets: herald's `access_token` (browsers cannot send a
/// header on `EventSource`), the common `token`, and `password`.
pub const SECRET_QUERY_KEYS: &[&str] = &["access_token", "token", "password"];

/// What a hidden secret is replaced with.
const MASK: &str = "***";

/// `url` with its credentials replaced by `***` (see [the module docs](self)). Text that is not
/// a URL comes back unchanged, except for a query string's secret values.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    // The authority starts after `scheme://` and ends at the path, the query or the fragment.
    let rest = match url.find("://") {
        Some(at) if is_scheme(&url[..at]) => {
            let (scheme, rest) = url.split_at(at + 3);
            out.push_str(scheme);
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, rest) = rest.split_at(end);
            match authority.rfind('@') {
                Some(at) => {
                    if let Some((user, _password)) = authority[..at].split_once(':') {
                        out.push_str(user);
                        out.push(':');
                    }
                    out.push_str(MASK);
                    out.push_str(&authority[at..]);
                }
                None => out.push_str(authority),
            }
            rest
        }
        _ => url,
    };
    let Some(q) = rest.find('?') else {
        out.push_str(rest);
        return out;
    };
    let (path, query) = rest.split_at(q + 1);
    out.push_str(path);
    let end = query.find('#').unwrap_or(query.len());
    let (query, fragment) = query.split_at(end);
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(fragment);
    out
}

/// `text` with every URL in it (`scheme://...` up to white space or a closing quote or bracket)
/// passed through [`redact_url`]: for messages that quote a URL among other words, such as an
/// HTTP client's errors.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // Back up over the scheme.
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        if !is_scheme(&rest[start..at]) {
            out.push_str(&rest[..at + 3]);
            rest = &rest[at + 3..];
            continue;
        }
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | '>' | ']'))
            .map_or(rest.len(), |i| at + i);
        // Punctuation that ends a sentence or a `url: error` label is the message's, not the URL's.
        let end = at
            + 3
            + rest[at + 3..end]
                .trim_end_matches([',', ';', '.', ':'])
                .len();
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// RFC 3986: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn is_secret_key(key: &str) -> bool {
    SECRET_QUERY_KEYS
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_passwords_and_lone_userinfo_are_hidden() {
        for (url, shown) in [
            (
                "redis://:hunter2@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "redis://default:hunter2@db:6379",
                "redis://default:***@db:6379",
            ),
            ("rediss://user:p%40ss:w@db", "rediss://user:***@db"),
            (
                "https://TOKEN@hub.example/events",
                "https://***@hub.example/events",
            ),
            ("http://a:b@[::1]:3000?x=1", "http://a:***@[::1]:3000?x=1"),
            // The path may hold an `@`: only the authority's userinfo is a credential.
            ("http://hub/users/@me", "http://hub/users/@me"),
            (
                "http://127.0.0.1:3000/events?topic=a",
                "http://127.0.0.1:3000/events?topic=a",
            ),
            ("not a url", "not a url"),
            ("", ""),
            // Too malformed to parse, still redacted.
            ("redis://:hunter2@[::1", "redis://:***@[::1"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn secret_query_values_are_hidden_and_nothing_else_changes() {
        assert_eq!(
            redact_url("http://h/events?topic=a&access_token=eyJ.x.y&lastEventId=1#f"),
            "http://h/events?topic=a&access_token=***&lastEventId=1#f"
        );
        assert_eq!(
            redact_url("http://h/?TOKEN=t&token&password=p&tokens=ok"),
            "http://h/?TOKEN=***&token&password=***&tokens=ok"
        );
        assert_eq!(
            redact_url("/events?access_token=t"),
            "/events?access_token=***"
        );
    }

    #[test]
    fn every_url_in_a_message_is_redacted() {
        assert_eq!(
            redact_text(
                "redis at redis://:pw@h:1: connection refused; see http://x/?token=t, \"https://u:v@w\""
            ),
            "redis at redis://:***@h:1: connection refused; see http://x/?token=***, \"https://u:***@w\""
        );
        assert_eq!(redact_text("no url here ://x"), "no url here ://x");
        assert_eq!(redact_text("a://b:c@d"), "a://b:***@d");
    }
}
