//! The server's clock: wall time plus a test-controlled forward offset.
//!
//! Everything time-dependent in a reference server — JWT `iat`/`exp`, expiry checks, refresh-token
//! lifetimes and the `Date` header — reads this one clock, so [`ServerClock::advance`] moves the
//! whole server into the future consistently (expire tokens without sleeping).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall time in milliseconds since the Unix epoch, shifted by an offset.
#[derive(Debug, Default)]
pub(crate) struct ServerClock {
    offset_ms: AtomicU64,
}

impl ServerClock {
    /// Milliseconds since the Unix epoch, as this server sees them.
    pub fn now_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        wall.saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves this server's time forward.
    pub fn advance(&self, by: Duration) {
        let by_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                Some(offset.saturating_add(by_ms))
            });
    }

    /// The current time as an IMF-fixdate, for the `Date` header.
    pub fn http_date(&self) -> String {
        let now = UNIX_EPOCH
            .checked_add(Duration::from_millis(self.now_ms()))
            .unwrap_or_else(SystemTime::now);
        httpdate::fmt_http_date(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_and_date_forward() {
        let clock = ServerClock::default();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now_ms();
        assert!(after >= before + 3_600_000 && after < before + 3_610_000);
        let date = httpdate::parse_http_date(&clock.http_date()).unwrap();
        let date_ms = date.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(date_ms + 2_000 > after && date_ms <= after);
    }
}
