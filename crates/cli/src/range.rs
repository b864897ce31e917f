//! The allowed range of every numeric and duration flag, checked when the command line is parsed.
//!
//! A flag takes its value parser from here, e.g.
//! `#[arg(long, value_parser = range::int(1, MAX_CONNECTIONS))]`, so a value out of range is
//! refused before anything starts, by clap, with exit code 2 and an error that names the flag,
//! the value and the range: `invalid value '0' for '--max-connections <N>': must be from 1 to
//! 1000000`. The same parser checks the flag's `HERALD_*` environment variable and its config
//! file key (see [`crate::config`]), so all three refuse the same values. A new flag picks the
//! parser of its kind and writes its bounds down as `MIN_*`/`MAX_*` constants with a reason.
//!
//! The kinds: [`int`] and [`float`] (within bounds), [`duration`] (a [`crate::duration`] within
//! bounds), and `*_or_zero` for flags whose 0 means "off" or "no limit". Floats refuse NaN and
//! infinities: `--publish-rate 1e-20` once panicked on the second publish, far from the flag.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// A whole number from `min` to `max`.
pub(crate) fn int<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |s| {
        let range = format!("from {min} to {max}");
        match s.trim().parse::<T>() {
            Ok(v) if v >= min && v <= max => Ok(v),
            Ok(_) => Err(format!("must be {range}")),
            Err(_) => Err(format!("not a whole number: must be {range}")),
        }
    }
}

/// A whole number from `min` to `max`, or 0 for "off" / "no limit".
pub(crate) fn int_or_zero<T>(
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Copy + Default + Send + Sync + 'static,
{
    move |s| {
        let range = format!("0 (no limit) or from {min} to {max}");
        match s.trim().parse::<T>() {
            Ok(v) if v == T::default() || (v >= min && v <= max) => Ok(v),
            Ok(_) => Err(format!("must be {range}")),
            Err(_) => Err(format!("not a whole number: must be {range}")),
        }
    }
}

/// A finite number from `min` to `max`, or 0 for "off" (NaN and infinities are refused).
pub(crate) fn float_or_zero(
    min: f64,
    max: f64,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s| {
        let range = format!("0 (off) or from {min} to {max}");
        match s.trim().parse::<f64>() {
            // -0 too: it equals 0.
            Ok(0.0) => Ok(0.0),
            Ok(v) if v.is_finite() && v >= min && v <= max => Ok(v),
            Ok(_) => Err(format!("must be {range}")),
            Err(_) => Err(format!("not a number: must be {range}")),
        }
    }
}

/// A finite number from `min` to `max` (NaN and infinities are refused).
pub(crate) fn float(
    min: f64,
    max: f64,
) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s| {
        let range = format!("from {min} to {max}");
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min && v <= max => Ok(v),
            Ok(_) => Err(format!("must be {range}")),
            Err(_) => Err(format!("not a number: must be {range}")),
        }
    }
}

/// A duration (`500ms`, `15s`, `2m`, `1h`, `7d`, bare seconds) from `min` to `max`.
pub(crate) fn duration(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    move |s| {
        let d = crate::duration::parse(s)?;
        if d < min || d > max {
            return Err(format!("must be from {} to {}", show(min), show(max)));
        }
        Ok(d)
    }
}

/// A duration from `min` to `max`, or 0 for "off" / "none".
pub(crate) fn duration_or_zero(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    move |s| {
        let d = crate::duration::parse(s)?;
        if !d.is_zero() && (d < min || d > max) {
            return Err(format!(
                "must be 0s (none) or from {} to {}",
                show(min),
                show(max)
            ));
        }
        Ok(d)
    }
}

/// A duration as the flags write it, in its largest whole unit: `10ms`, `90s`, `1h`, `3650d`.
pub(crate) fn show(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_range_and_zero_when_it_means_off() {
        let p = int(1usize, 10);
        assert_eq!(p("1"), Ok(1));
        assert_eq!(p("10"), Ok(10));
        assert_eq!(p("0"), Err("must be from 1 to 10".into()));
        assert_eq!(p("11"), Err("must be from 1 to 10".into()));
        for bad in ["-1", "1.5", "x", "", "99999999999999999999999"] {
            assert!(
                p(bad).unwrap_err().starts_with("not a whole number"),
                "{bad}"
            );
        }
        let p = int_or_zero(5u64, 10);
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("5"), Ok(5));
        assert_eq!(p("4"), Err("must be 0 (no limit) or from 5 to 10".into()));
    }

    #[test]
    fn floats_refuse_nan_infinities_and_tiny_or_huge_values() {
        let p = float_or_zero(0.001, 1e6);
        assert_eq!(p("0"), Ok(0.0));
        assert_eq!(p("-0"), Ok(0.0));
        assert_eq!(p("0.5"), Ok(0.5));
        for bad in ["1e-20", "-1", "NaN", "inf", "-inf", "1e300", "x", ""] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let p = float(0.5, 2.0);
        assert_eq!(p("2"), Ok(2.0));
        assert!(p("0").is_err() && p("NaN").is_err());
    }

    #[test]
    fn durations_in_range() {
        let p = duration(Duration::from_millis(10), Duration::from_secs(3600));
        assert_eq!(p("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(p("0s"), Err("must be from 10ms to 1h".into()));
        assert_eq!(p("2h"), Err("must be from 10ms to 1h".into()));
        assert!(p("-1s").is_err() && p("1.5s").is_err());
        let p = duration_or_zero(Duration::from_secs(1), Duration::from_secs(86_400 * 3650));
        assert_eq!(p("0"), Ok(Duration::ZERO));
        assert_eq!(
            p("500ms"),
            Err("must be 0s (none) or from 1s to 3650d".into())
        );
        assert!(p("9999d").is_err());
    }

    #[test]
    fn durations_show_in_their_largest_whole_unit() {
        assert_eq!(show(Duration::from_millis(10)), "10ms");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(86_400)), "1d");
        assert_eq!(show(Duration::ZERO), "0ms");
    }
}
