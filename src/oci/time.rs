//! Times in documents and tar headers: never the wall clock, always
//! `SOURCE_DATE_EPOCH` or a fixed time, written as RFC 3339 as Go reads it;
//! the one exception is an image's `created` when its spec asks for
//! `"now"`, by name.

use crate::error::{Error, Result};

/// The image creation time: the spec's, else `SOURCE_DATE_EPOCH`, else
/// 1970-01-01T00:00:01Z. The wall clock only when the spec says `"now"`
/// (as dockerTools takes it; the image is then not reproducible).
pub fn created_time(spec_created: Option<&str>) -> Result<String> {
    if spec_created == Some("now") {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::Invalid("created \"now\": the clock is before 1970".into()))?
            .as_secs();
        return Ok(format_epoch(secs));
    }
    if let Some(c) = spec_created {
        if !is_rfc3339(c) {
            return Err(Error::Invalid(format!(
                "created {c:?} is not an RFC 3339 time like 2024-01-31T12:00:00Z"
            )));
        }
        return Ok(c.to_owned());
    }
    Ok(format_epoch(crate::oci::time::default_mtime()?))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (UTC).
pub fn format_epoch(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from day count (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// An RFC 3339 time (as `is_rfc3339` accepts it) in UTC, to the second
/// (`YYYY-MM-DDTHH:MM:SSZ`, what SPDX and CycloneDX want), for times from
/// 1970 on; `None` for anything else.
pub fn utc_seconds(s: &str) -> Option<String> {
    if !is_rfc3339(s) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    // Days since 1970 of a civil date (proleptic Gregorian).
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut secs = days * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?;
    let zone = s.rfind(['Z', '+', '-']).filter(|&i| i >= 19)?;
    if &s[zone..] != "Z" {
        let sign = if s.as_bytes()[zone] == b'+' { 1 } else { -1 };
        let off = n(zone + 1..zone + 3)? * 3600 + n(zone + 4..zone + 6)? * 60;
        secs -= sign * off;
    }
    u64::try_from(secs).ok().map(format_epoch)
}

/// An RFC 3339 `date-time` as Go's `time.Time` reads it (skopeo, umoci,
/// podman): an upper-case `T` and `Z`, and no leap second (`:60`), which
/// RFC 3339 allows and Go refuses.
pub(crate) fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> u32 {
        std::str::from_utf8(&b[r])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(u32::MAX)
    };
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days_in_month || num(11..13) > 23 || num(14..16) > 59 || num(17..19) > 59 {
        return false;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &rest[1 + n..];
    }
    matches!(rest, [b'Z'])
        || (rest.len() == 6
            && matches!(rest[0], b'+' | b'-')
            && rest[1..3].iter().all(u8::is_ascii_digit)
            && rest[3] == b':'
            && rest[4..6].iter().all(u8::is_ascii_digit)
            && (rest[1] - b'0') * 10 + (rest[2] - b'0') < 24
            && (rest[4] - b'0') * 10 + (rest[5] - b'0') < 60)
}

/// The mtime of every entry: `SOURCE_DATE_EPOCH` when set, else 1
/// (1970-01-01T00:00:01Z; 0 is avoided because some tools treat it as unset).
pub fn default_mtime() -> Result<u64> {
    /// 9999-12-31T23:59:59Z: RFC 3339 has four-digit years.
    const MAX: u64 = 253_402_300_799;
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => s.trim().parse().ok().filter(|t| *t <= MAX).ok_or_else(|| {
            Error::Invalid(format!(
                "SOURCE_DATE_EPOCH={s:?} is not a number of seconds between 1970 and 9999"
            ))
        }),
        _ => Ok(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `"now"` is the wall clock, asked for by name (issue 21); anything
    /// else that is not RFC 3339 is still refused.
    #[test]
    fn created_now_is_the_clock() {
        let now = created_time(Some("now")).unwrap();
        assert!(is_rfc3339(&now), "{now}");
        assert!(now.as_str() >= "2025", "{now}");
        assert!(created_time(Some("Now"))
            .unwrap_err()
            .to_string()
            .contains("is not an RFC 3339 time"));
    }

    #[test]
    fn utc_seconds_of_rfc3339() {
        assert_eq!(
            utc_seconds("1970-01-01T00:00:01Z").unwrap(),
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(
            utc_seconds("2024-01-01T00:00:00.5+02:00").unwrap(),
            "2023-12-31T22:00:00Z"
        );
        assert_eq!(
            utc_seconds("2024-02-29T23:30:00-01:00").unwrap(),
            "2024-03-01T00:30:00Z"
        );
        assert_eq!(utc_seconds("1969-12-31T23:59:59Z"), None);
        assert_eq!(utc_seconds("yesterday"), None);
    }

    #[test]
    fn epoch_formatting() {
        assert_eq!(format_epoch(1), "1970-01-01T00:00:01Z");
        assert_eq!(format_epoch(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_epoch(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn rfc3339_check() {
        for good in ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00.123+02:00"] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "2024-01-31",
            "2024-01-31 12:00:00Z",
            "2024-01-31T12:00:00",
            "2024-01-31T12:00:00.Z",
            "1970-01-01t00:00:01z",
            "2016-12-31T23:59:60Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
