//! Formatting of times, durations and states for people (the JSON output keeps the numbers).

use tokenvault::SessionState;

/// A session state's stable name.
pub(crate) fn state(s: SessionState) -> &'static str {
    match s {
        SessionState::Fresh => "fresh",
        SessionState::RefreshDue => "refresh_due",
        SessionState::Expired => "expired",
        SessionState::ReauthenticationRequired => "reauthentication_required",
    }
}

/// Text from the file (an account id, a profile name, a stored message) made safe for a
/// terminal: control characters (escape sequences, line breaks) are shown escaped, not obeyed.
pub(crate) fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Milliseconds since the Unix epoch as an RFC 3339 UTC time, to the second.
pub(crate) fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration in ms as `2d 3h`, `4m 5s` or `350ms` (the two largest units).
pub(crate) fn span(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut left = s;
    for (size, name) in units {
        if left >= size || !parts.is_empty() {
            parts.push(format!("{}{name}", left / size));
            left %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// Time left (positive) or past (negative), in ms: `in 29m 12s` or `expired 3m 2s ago`.
pub(crate) fn duration(remaining_ms: i64) -> String {
    if remaining_ms >= 0 {
        format!("in {}", span(remaining_ms.unsigned_abs()))
    } else {
        format!("expired {} ago", span(remaining_ms.unsigned_abs()))
    }
}

/// The server − device clock offset, in words.
pub(crate) fn offset(ms: i64) -> String {
    let abs = span(ms.unsigned_abs());
    match ms {
        0 => "0 (the device clock agrees with the server)".to_owned(),
        m if m > 0 => format!("+{abs} (the server is ahead of the device)"),
        _ => format!("-{abs} (the server is behind the device)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(-1000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("player-1"), "player-1");
        assert_eq!(printable("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
    }

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(span(350), "350ms");
        assert_eq!(span(61_000), "1m 1s");
        assert_eq!(span(3 * 86_400_000 + 7_200_000 + 5_000), "3d 2h");
        assert_eq!(span(3_600_000), "1h 0m");
        assert_eq!(duration(-61_000), "expired 1m 1s ago");
        assert_eq!(duration(1_800_000), "in 30m 0s");
        assert_eq!(offset(-2_500), "-2s (the server is behind the device)");
    }
}
