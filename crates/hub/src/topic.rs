//! Topic names and the patterns subscribers use to select them.
//!
//! A **topic** is one or more segments separated by `/`: `chat`, `chat/lobby`, `demo/time`. Each
//! segment is non-empty and made of ASCII letters, digits and `-_.:@~`; the whole name is at most
//! [`MAX_TOPIC_LEN`] bytes. There is no leading, trailing or doubled `/`.
//!
//! A **pattern** (in `GET /events?topic=...`) is a topic in which whole segments may be wildcards:
//!
//! | pattern    | matches                                   | does not match         |
//! |------------|-------------------------------------------|------------------------|
//! | `chat`     | `chat`                                    | `chat/lobby`           |
//! | `chat/*`   | `chat/lobby`, `chat/dev`                  | `chat`, `chat/a/b`     |
//! | `*/time`   | `demo/time`                               | `time`, `a/b/time`     |
//! | `chat/**`  | `chat/lobby`, `chat/a/b` (one or more)    | `chat`                 |
//! | `**`       | every topic                               |                        |
//!
//! `*` stands for exactly one segment; `**` for one or more segments and only as the last segment.
//! A wildcard is always a whole segment: `ch*t` is refused.

use std::fmt;

/// Longest topic name or pattern, in bytes: room for a few levels of ids, small enough that a
/// hostile subscriber cannot make matching expensive.
pub const MAX_TOPIC_LEN: usize = 255;

/// Why a topic name or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is empty.
    #[error("topic must not be empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`].
    #[error("topic is longer than {MAX_TOPIC_LEN} bytes")]
    TooLong,
    /// A segment is empty (leading, trailing or doubled `/`).
    #[error("topic has an empty segment (leading, trailing or doubled '/')")]
    EmptySegment,
    /// A character outside `A-Z a-z 0-9 - _ . : @ ~` (and `/` between segments).
    #[error("topic may only contain ASCII letters, digits, '/' and '-_.:@~'")]
    BadChar,
    /// A `*` inside a segment of a pattern (`ch*t`, `a/*b`, `***`): a wildcard is a whole segment.
    #[error(
        "a wildcard is a whole segment: write 'chat/*' (one segment) or 'chat/**' (one or more), not 'chat*' or 'ch*t'"
    )]
    BadWildcard,
    /// `**` before the last segment of a pattern (`**/a`, `a/**/b`).
    #[error(
        "'**' may only be the last segment, as in 'chat/**'; for one segment in the middle use '*', as in 'chat/*/typing'"
    )]
    RestNotLast,
    /// A wildcard in a topic to publish to: an event goes to one topic, patterns are for
    /// subscribing.
    #[error(
        "wildcards ('*', '**') are for subscribing; an event is published to one plain topic, e.g. 'chat/lobby'"
    )]
    WildcardInTopic,
}

fn is_topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@' | b'~')
}

fn check_len(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        Err(TopicError::Empty)
    } else if s.len() > MAX_TOPIC_LEN {
        Err(TopicError::TooLong)
    } else {
        Ok(())
    }
}

fn check_segment(seg: &str) -> Result<(), TopicError> {
    if seg.is_empty() {
        return Err(TopicError::EmptySegment);
    }
    if seg.contains('*') {
        return Err(TopicError::BadWildcard);
    }
    if !seg.bytes().all(is_topic_byte) {
        return Err(TopicError::BadChar);
    }
    Ok(())
}

/// Checks that `s` is a valid topic name to publish to (no wildcards).
pub fn check_topic(s: &str) -> Result<(), TopicError> {
    check_len(s)?;
    // In a topic any `*` is a publisher mistaking a topic for a pattern, whatever its place.
    s.split('/')
        .try_for_each(check_segment)
        .map_err(|e| match e {
            TopicError::BadWildcard => TopicError::WildcardInTopic,
            other => other,
        })
}

/// One segment of a [`TopicPattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// `*`: exactly one segment.
    One,
    /// `**` (last only): one or more segments.
    Rest,
}

/// A validated subscription pattern (see the module docs for the rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPattern {
    text: Box<str>,
    /// `None` for a plain topic: the common case matches with one string comparison.
    segments: Option<Box<[Segment]>>,
}

impl TopicPattern {
    /// Parses a pattern from untrusted input.
    pub fn try_new(s: &str) -> Result<Self, TopicError> {
        check_len(s)?;
        if !s.contains('*') {
            check_topic(s)?;
            return Ok(Self {
                text: s.into(),
                segments: None,
            });
        }
        let parts: Vec<&str> = s.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            segments.push(match part {
                "*" => Segment::One,
                "**" if i == last => Segment::Rest,
                "**" => return Err(TopicError::RestNotLast),
                _ => {
                    check_segment(part)?;
                    Segment::Literal(part.into())
                }
            });
        }
        Ok(Self {
            text: s.into(),
            segments: Some(segments.into()),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no wildcard: it names one topic.
    pub fn is_exact(&self) -> bool {
        self.segments.is_none()
    }

    /// Whether `topic` (a valid topic name) is selected by this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        let Some(segments) = &self.segments else {
            return *self.text == *topic;
        };
        let mut parts = topic.split('/');
        for segment in segments.iter() {
            match segment {
                Segment::Rest => return parts.next().is_some(),
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(lit) => {
                    if parts.next() != Some(&**lit) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

impl TopicPattern {
    /// The segments, with a plain topic's split into literals.
    fn parts(&self) -> Vec<Part<'_>> {
        match &self.segments {
            None => self.text.split('/').map(Part::Literal).collect(),
            Some(segments) => segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => Part::Literal(l),
                    Segment::One => Part::One,
                    Segment::Rest => Part::Rest,
                })
                .collect(),
        }
    }

    /// Whether every topic that `other` matches is matched by `self` too (`chat/**` covers
    /// `chat/*` and `chat/a`; `chat/*` does not cover `chat/**`). A plain topic covers itself.
    pub fn covers(&self, other: &TopicPattern) -> bool {
        fn go(mine: &[Part<'_>], theirs: &[Part<'_>]) -> bool {
            match (mine.first(), theirs.first()) {
                (None, None) => true,
                // `**` (always last) takes one or more segments: anything non-empty fits.
                (Some(Part::Rest), Some(_)) => true,
                (Some(Part::One), Some(Part::One | Part::Literal(_))) => {
                    go(&mine[1..], &theirs[1..])
                }
                (Some(Part::Literal(a)), Some(Part::Literal(b))) if a == b => {
                    go(&mine[1..], &theirs[1..])
                }
                _ => false,
            }
        }
        go(&self.parts(), &other.parts())
    }
}

/// A segment as [`TopicPattern::covers`] compares them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Literal(&'a str),
    One,
    Rest,
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_topics() {
        for ok in [
            "a",
            "chat",
            "chat/lobby",
            "demo/time",
            "a-b_c.d:e@f~g/1/2/3",
        ] {
            assert_eq!(check_topic(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_topic(&"a".repeat(MAX_TOPIC_LEN)), Ok(()));
    }

    #[test]
    fn invalid_topics() {
        assert_eq!(check_topic(""), Err(TopicError::Empty));
        assert_eq!(
            check_topic(&"a".repeat(MAX_TOPIC_LEN + 1)),
            Err(TopicError::TooLong)
        );
        for bad in ["/a", "a/", "a//b", "/"] {
            assert_eq!(check_topic(bad), Err(TopicError::EmptySegment), "{bad}");
        }
        for bad in ["a b", "a\nb", "a\rb", "é", "a?b", "a#b", "a%20"] {
            assert_eq!(check_topic(bad), Err(TopicError::BadChar), "{bad:?}");
        }
        for bad in ["*", "chat/*", "a*", "chat/**"] {
            assert_eq!(check_topic(bad), Err(TopicError::WildcardInTopic), "{bad}");
        }
    }

    #[test]
    fn pattern_table() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("chat", &["chat"], &["chat/lobby", "cha", "chats"]),
            (
                "chat/*",
                &["chat/lobby", "chat/dev"],
                &["chat", "chat/a/b", "chatx/a"],
            ),
            (
                "*/time",
                &["demo/time"],
                &["time", "a/b/time", "demo/times"],
            ),
            ("chat/**", &["chat/lobby", "chat/a/b"], &["chat", "other/a"]),
            ("**", &["a", "a/b", "a/b/c"], &[]),
            ("*", &["a"], &["a/b"]),
            ("a/*/c", &["a/b/c"], &["a/c", "a/b/c/d", "a/b/d"]),
        ];
        for (pattern, yes, no) in cases {
            let p = TopicPattern::try_new(pattern).unwrap();
            assert_eq!(p.as_str(), *pattern);
            for t in *yes {
                assert!(p.matches(t), "{pattern} should match {t}");
            }
            for t in *no {
                assert!(!p.matches(t), "{pattern} should not match {t}");
            }
        }
    }

    #[test]
    fn coverage_table() {
        let p = |s: &str| TopicPattern::try_new(s).unwrap();
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("**", &["a", "a/b", "*", "a/*", "a/**", "*/b"], &[]),
            (
                "chat/**",
                &["chat/a", "chat/*", "chat/**", "chat/*/b", "chat/a/**"],
                &["chat", "*/a", "**", "chats/a"],
            ),
            (
                "chat/*",
                &["chat/a", "chat/*"],
                &["chat", "chat/**", "chat/a/b", "*/a"],
            ),
            ("*", &["a", "*"], &["a/b", "**", "*/*"]),
            ("*/b", &["a/b", "*/b"], &["a/c", "*/*", "**"]),
            ("chat", &["chat"], &["chat/a", "*", "**"]),
        ];
        for (mine, yes, no) in cases {
            for t in *yes {
                assert!(p(mine).covers(&p(t)), "{mine} should cover {t}");
            }
            for t in *no {
                assert!(!p(mine).covers(&p(t)), "{mine} should not cover {t}");
            }
        }
    }

    /// Coverage agrees with matching: if `a` covers `b`, every topic `b` matches, `a` matches.
    #[test]
    fn coverage_agrees_with_matching() {
        let pats = [
            "**", "*", "a", "a/*", "a/**", "*/b", "a/b", "*/*", "a/*/c", "*/**",
        ];
        let topics = ["a", "b", "a/b", "a/c", "b/b", "a/b/c", "a/x/c", "x/y/z/w"];
        for a in pats {
            for b in pats {
                let (pa, pb) = (
                    TopicPattern::try_new(a).unwrap(),
                    TopicPattern::try_new(b).unwrap(),
                );
                let by_topics = topics.iter().all(|t| !pb.matches(t) || pa.matches(t));
                if pa.covers(&pb) {
                    assert!(by_topics, "{a} covers {b} but misses a topic");
                }
            }
        }
    }

    #[test]
    fn invalid_patterns() {
        for bad in ["ch*t", "a/***", "a/*b", "chat*"] {
            assert_eq!(
                TopicPattern::try_new(bad),
                Err(TopicError::BadWildcard),
                "{bad}"
            );
        }
        for bad in ["**/a", "a/**/b", "**/**"] {
            assert_eq!(
                TopicPattern::try_new(bad),
                Err(TopicError::RestNotLast),
                "{bad}"
            );
        }
        assert_eq!(TopicPattern::try_new(""), Err(TopicError::Empty));
        assert_eq!(TopicPattern::try_new("a//*"), Err(TopicError::EmptySegment));
        assert_eq!(TopicPattern::try_new("a b/*"), Err(TopicError::BadChar));
    }
}
