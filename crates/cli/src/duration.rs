//! Durations on the command line and in the config file: `500ms`, `15s`, `2m`, `1h`, `7d`, or a
//! bare number of seconds. One parser for every flag (`serve`'s timeouts, `token --ttl`); each
//! flag's range is checked by [`crate::range::duration`].

use std::time::Duration;

/// Parses `500ms`, `15s`, `2m`, `1h`, `7d`, or a bare number of seconds.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 15s, 500ms or 2m"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bad_input() {
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "s",
            "1x",
            "1y",
            "-1s",
            "1.5s",
            "99999999999999999999h",
            "999999999999999d",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }
}
