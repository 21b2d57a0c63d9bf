//! Fixed number formatting for everything the report prints, so the same numbers always give
//! the same bytes (no locale, no shortest-round-trip surprises between values).

/// `x` with `sig` significant digits: plain notation for 1e-3 ≤ |x| < 1e6, else `1.23e7`.
pub fn sig(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let mag = x.abs().log10().floor() as i32;
    if (-3..6).contains(&mag) {
        let decimals = (sig as i32 - 1 - mag).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{:.*e}", sig.saturating_sub(1), x)
    }
}

/// Counts and sizes the way people say them: `43.9k`, `1.2M`, `3.4B` (the study file's
/// [`crate::study::units::human`]), with three significant digits below 1,000 and `—` for
/// non-finite values.
pub fn human(x: f64) -> String {
    if !x.is_finite() {
        "—".into()
    } else if x.abs() < 1e3 {
        sig(x, 3)
    } else {
        crate::study::units::human(x)
    }
}

/// A FLOP count or other quantity better read in scientific notation: `4.70e11`.
pub fn sci(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    format!("{x:.2e}")
}

/// A ratio as a percentage with two decimals.
pub fn pct(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    format!("{:.2} %", x * 100.0)
}

/// Seconds as `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "—".into();
    }
    crate::study::units::format_duration(s)
}

/// Bytes as MiB.
pub fn mib(bytes: f64) -> String {
    if !bytes.is_finite() {
        return "—".into();
    }
    format!("{:.0} MiB", bytes / (1024.0 * 1024.0))
}

/// An axis tick: `v` itself, or 10^v on a log axis.
pub fn axis_label(v: f64, log: bool) -> String {
    if log { human(10f64.powf(v)) } else { sig(v, 3) }
}

/// `[lo, hi]` with `sig` digits.
/// " [lo, hi]" after a number in prose, or nothing without an interval.
pub fn after(ci: Option<[f64; 2]>, digits: usize) -> String {
    ci.map_or(String::new(), |[lo, hi]| {
        format!(" [{}, {}]", sig(lo, digits), sig(hi, digits))
    })
}

pub fn interval(ci: Option<[f64; 2]>, digits: usize) -> String {
    match ci {
        Some([lo, hi]) => format!("[{}, {}]", sig(lo, digits), sig(hi, digits)),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_the_same_way_every_time() {
        assert_eq!(sig(3.533812, 4), "3.534");
        assert_eq!(sig(0.0123456, 3), "0.0123");
        assert_eq!(sig(1234567.0, 3), "1.23e6");
        assert_eq!(sig(f64::NAN, 3), "—");
        assert_eq!(human(43_904.0), "43.9k");
        assert_eq!(human(4_390.0), "4.39k");
        assert_eq!(human(391_000.0), "391k");
        assert_eq!(human(1.5e9), "1.50B");
        assert_eq!(human(512.0), "512");
        assert_eq!(sci(4.7e11), "4.70e11");
        assert_eq!(pct(0.0745), "7.45 %");
        assert_eq!(axis_label(5.0, true), "100k");
        assert_eq!(interval(Some([0.1, 0.25]), 2), "[0.10, 0.25]");
    }
}
