//! When a token is due: [`RefreshPolicy`] and the cached, decrypted session the hot path reads.
//!
//! * [`RefreshPolicy`] decides freshness: refresh at a point of the lifetime (75 % by default)
//!   with per-session jitter, honour a per-call minimum TTL capped at half the lifetime (so it
//!   can never cause a refresh loop), back off exponentially with jitter after failures.
//! * `CachedSession` is the decrypted state the hot path reads: its deadlines are monotonic.

use std::time::Duration;

use crate::clock::Clock;
use crate::crypto::random_u64;
use crate::error::{Result, VaultError};
use crate::secret::AccessToken;
use crate::session::{SessionRecord, SessionState};

/// Tuning of when and how often to refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshPolicy {
    /// Fraction of the access token's lifetime after which it is refreshed proactively.
    pub refresh_point: f64,
    /// Spread around the refresh point (± this fraction of the lifetime), so a fleet of
    /// clients that signed in together does not refresh in lockstep.
    pub jitter: f64,
    /// A token is treated as expired this long before its `exp` (capped at 10 % of its
    /// lifetime), to absorb request latency and small clock errors.
    pub expiry_margin: Duration,
    /// The largest share of a token's lifetime a caller's `min_ttl` may demand (a longer
    /// `min_ttl` is cut to it, so a value longer than the lifetime cannot cause a refresh loop).
    pub min_ttl_cap: f64,
    /// First back-off delay after a failed proactive refresh.
    pub backoff_initial: Duration,
    /// Largest back-off delay.
    pub backoff_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            refresh_point: 0.75,
            jitter: 0.05,
            expiry_margin: Duration::from_secs(5),
            min_ttl_cap: 0.5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// The longest expiry margin a policy accepts.
const MAX_EXPIRY_MARGIN: Duration = Duration::from_secs(3600);

impl RefreshPolicy {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(0.05..=0.95).contains(&self.refresh_point) || !(0.0..=0.2).contains(&self.jitter) {
            return Err(VaultError::invalid(
                "refresh_point must be in 0.05..=0.95 and jitter in 0..=0.2",
            ));
        }
        if !(0.05..=0.9).contains(&self.min_ttl_cap) {
            return Err(VaultError::invalid("min_ttl_cap must be in 0.05..=0.9"));
        }
        if self.expiry_margin > MAX_EXPIRY_MARGIN {
            return Err(VaultError::invalid("expiry_margin must be at most one hour"));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err(VaultError::invalid("backoff_initial must be > 0 and <= backoff_max"));
        }
        Ok(())
    }

    /// The delay before attempt `failures + 1` after `failures` failures: exponential, capped,
    /// with "equal jitter" (half fixed, half random) so retries spread out.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let exp = self
            .backoff_initial
            .saturating_mul(1u32.checked_shl(failures.saturating_sub(1).min(20)).unwrap_or(u32::MAX));
        let capped = exp.min(self.backoff_max);
        let half = capped / 2;
        let r = (random_u64() % 1_000_000) as f64 / 1_000_000.0;
        half + half.mul_f64(r)
    }
}

fn add_signed(base: u64, delta_ns: i128) -> u64 {
    let v = i128::from(base) + delta_ns;
    v.clamp(0, i128::from(u64::MAX)) as u64
}

/// The in-memory, decrypted state of one session.
pub(crate) struct CachedSession {
    pub record: SessionRecord,
    pub generation: u64,
    pub token: AccessToken,
    /// Proactive refresh point (monotonic ns).
    pub refresh_at: u64,
    /// Usable until (exp minus margin), monotonic ns.
    pub usable_until: u64,
    /// The real `exp`, monotonic ns.
    pub expires_at: u64,
    /// End of the refresh credential's life, monotonic ns, if known.
    pub session_ends_at: Option<u64>,
    /// The longest `min_ttl` a caller may demand (the policy's share of the lifetime), ns.
    pub min_ttl_cap_ns: u64,
}

/// When a cached token stops being handed out as is (monotonic ns).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Due {
    /// Proactive refresh point.
    pub refresh_at: u64,
    /// Usable until (exp minus margin).
    pub usable_until: u64,
    /// The longest `min_ttl` a caller may demand (the policy's share of the lifetime).
    pub min_ttl_cap_ns: u64,
}

impl Due {
    /// True when the token can be handed out without any refresh for a caller that needs it to
    /// live at least `min_ttl_ns` more (capped at the policy's share of the lifetime, half by
    /// default: a min TTL longer than the lifetime cannot cause a refresh loop).
    #[inline]
    pub(crate) fn fresh_for(&self, now: u64, min_ttl_ns: u64) -> bool {
        if now >= self.refresh_at {
            return false;
        }
        if min_ttl_ns == 0 {
            return true;
        }
        self.usable_until.saturating_sub(now) >= min_ttl_ns.min(self.min_ttl_cap_ns)
    }
}

impl std::fmt::Debug for CachedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSession")
            .field("generation", &self.generation)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl CachedSession {
    /// Convert a record's server-time instants to monotonic deadlines, now.
    pub(crate) fn build(
        record: SessionRecord,
        generation: u64,
        clock: &dyn Clock,
        policy: &RefreshPolicy,
    ) -> CachedSession {
        let device_now = clock.wall_ms();
        let mono_now = clock.mono_ns();
        let server_now = device_now.saturating_add(record.clock_offset_ms);
        let to_mono =
            |server_ms: i64| add_signed(mono_now, i128::from(server_ms.saturating_sub(server_now)) * 1_000_000);
        let lifetime_ms = record.lifetime_ms();
        let lifetime_ns = u64::try_from(lifetime_ms).unwrap_or(1_000).saturating_mul(1_000_000);
        let expires_at = to_mono(record.access_expires_at_ms);
        let margin = u64::try_from(policy.expiry_margin.as_nanos())
            .unwrap_or(u64::MAX)
            .min(lifetime_ns / 10);
        let jitter = if policy.jitter > 0.0 {
            ((random_u64() % 2_000_001) as f64 / 1_000_000.0 - 1.0) * policy.jitter
        } else {
            0.0
        };
        let point = (policy.refresh_point + jitter).clamp(0.01, 0.99);
        let left_at_refresh = (lifetime_ns as f64 * (1.0 - point)) as u64;
        let session_ends_at = if record.offline {
            None
        } else {
            record.refresh_expires_at_ms.map(to_mono)
        };
        let token = AccessToken::of_record(&record.access_token, generation);
        CachedSession {
            record,
            generation,
            token,
            refresh_at: expires_at.saturating_sub(left_at_refresh),
            usable_until: expires_at.saturating_sub(margin),
            expires_at,
            session_ends_at,
            min_ttl_cap_ns: (lifetime_ns as f64 * policy.min_ttl_cap) as u64,
        }
    }

    /// True when the token can be handed out without any refresh for a caller that needs it to
    /// live at least `min_ttl_ns` more.
    #[inline]
    pub(crate) fn fresh_for(&self, now: u64, min_ttl_ns: u64) -> bool {
        self.due().fresh_for(now, min_ttl_ns)
    }

    /// The deadlines the hot path needs (kept with each thread's copy of the token).
    #[inline]
    pub(crate) fn due(&self) -> Due {
        Due {
            refresh_at: self.refresh_at,
            usable_until: self.usable_until,
            min_ttl_cap_ns: self.min_ttl_cap_ns,
        }
    }

    /// True while the token can still be served (e.g. during an outage).
    pub(crate) fn usable(&self, now: u64) -> bool {
        now < self.usable_until
    }

    pub(crate) fn state(&self, now: u64) -> SessionState {
        if self.record.verdict.is_some() {
            SessionState::ReauthenticationRequired
        } else if now >= self.usable_until {
            SessionState::Expired
        } else if now >= self.refresh_at {
            SessionState::RefreshDue
        } else {
            SessionState::Fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::secret::SecretString;

    fn record(lifetime_s: i64, now_ms: i64) -> SessionRecord {
        SessionRecord {
            account: "a".into(),
            profile: "p".into(),
            access_token: crate::secret::TokenText::new("tok"),
            refresh_credential: Some(SecretString::new("r")),
            token_type: None,
            scope: None,
            issued_at_ms: now_ms,
            access_expires_at_ms: now_ms + lifetime_s * 1000,
            refresh_expires_at_ms: None,
            offline: false,
            clock_offset_ms: 0,
            hints: Default::default(),
            created_at_ms: now_ms,
            refresh_count: 0,
            origin: None,
            verdict: None,
            legacy_reauth: None,
            identity: None,
        }
    }

    #[test]
    fn refresh_point_and_min_ttl_cap() {
        let clock = ManualClock::new();
        let policy = RefreshPolicy {
            jitter: 0.0,
            ..RefreshPolicy::default()
        };
        let c = CachedSession::build(record(100, clock.wall_ms()), 1, clock.as_ref(), &policy);
        let now = clock.mono_ns();
        assert!(c.fresh_for(now, 0));
        assert!(!c.fresh_for(now + 75_000_000_000, 0));
        assert!(c.fresh_for(now + 74_000_000_000, 0));
        // A min TTL longer than the lifetime is capped at half of it: a brand-new token passes.
        assert!(c.fresh_for(now, 10_000_000_000_000));
        assert!(!c.fresh_for(now + 60_000_000_000, 10_000_000_000_000));
    }

    #[test]
    fn the_min_ttl_cap_is_the_policys() {
        let clock = ManualClock::new();
        let policy = RefreshPolicy {
            jitter: 0.0,
            refresh_point: 0.9,
            min_ttl_cap: 0.2,
            ..RefreshPolicy::default()
        };
        let c = CachedSession::build(record(100, clock.wall_ms()), 1, clock.as_ref(), &policy);
        let now = clock.mono_ns();
        // Usable until 95 s (the 5 s margin); a caller's min TTL is cut to 20 s of the 100 s.
        let s = 1_000_000_000u64;
        assert!(c.fresh_for(now + 74 * s, 10_000 * s));
        assert!(!c.fresh_for(now + 76 * s, 10_000 * s));
        assert!(c.fresh_for(now + 76 * s, 10 * s));
        // With the default cap (half), the same caller needed 50 s.
        let d = CachedSession::build(
            record(100, clock.wall_ms()),
            1,
            clock.as_ref(),
            &RefreshPolicy {
                min_ttl_cap: 0.5,
                ..policy
            },
        );
        assert!(!d.fresh_for(now + 46 * s, 10_000 * s));
    }

    #[test]
    fn invalid_policies_are_invalid_input() {
        let bad = [
            RefreshPolicy {
                refresh_point: 0.99,
                ..RefreshPolicy::default()
            },
            RefreshPolicy {
                refresh_point: f64::NAN,
                ..RefreshPolicy::default()
            },
            RefreshPolicy {
                jitter: 0.3,
                ..RefreshPolicy::default()
            },
            RefreshPolicy {
                min_ttl_cap: 0.0,
                ..RefreshPolicy::default()
            },
            RefreshPolicy {
                min_ttl_cap: 0.95,
                ..RefreshPolicy::default()
            },
            RefreshPolicy {
                expiry_margin: Duration::from_secs(3601),
                ..RefreshPolicy::default()
            },
            RefreshPolicy {
                backoff_initial: Duration::ZERO,
                ..RefreshPolicy::default()
            },
        ];
        for p in bad {
            assert_eq!(
                p.validate().map_err(|e| e.code()),
                Err(crate::ErrorCode::InvalidInput),
                "{p:?}"
            );
        }
        assert!(RefreshPolicy::default().validate().is_ok());
    }

    #[test]
    fn jitter_spreads_refresh_points() {
        let clock = ManualClock::new();
        let policy = RefreshPolicy::default();
        let points: std::collections::BTreeSet<u64> = (0..20)
            .map(|_| CachedSession::build(record(1000, clock.wall_ms()), 1, clock.as_ref(), &policy).refresh_at)
            .collect();
        assert!(points.len() > 10);
        let now = clock.mono_ns();
        for p in points {
            let frac = (p - now) as f64 / 1e12;
            assert!((0.69..=0.81).contains(&frac), "{frac}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RefreshPolicy::default();
        assert!(p.backoff(1) <= Duration::from_secs(1));
        assert!(p.backoff(5) >= Duration::from_secs(8));
        assert!(p.backoff(50) <= Duration::from_secs(300));
        assert!(p.backoff(50) >= Duration::from_secs(150));
    }
}
