//! Clocks: a wall clock to talk to servers, a monotonic clock to schedule.
//!
//! Expiry instants are stored in *server time* (anchored on the HTTP `Date` header or the JWT
//! `iat` claim) together with the measured offset between server and device. In memory, every
//! deadline is converted once to the monotonic clock, so moving the device clock by hours while
//! the app runs changes nothing. The clock is a trait so tests can move either clock at will.

#[cfg(any(test, feature = "test-support"))]
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::time::Instant;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of time. Implementations must be cheap: `mono_ns` is on the hot read path.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Device wall-clock time, milliseconds since the Unix epoch. May jump.
    fn wall_ms(&self) -> i64;
    /// Monotonic nanoseconds since an arbitrary origin fixed for the clock's lifetime. A few
    /// milliseconds of granularity is fine: it only schedules refreshes.
    fn mono_ns(&self) -> u64;
}

/// The real clocks. On Linux and Android the monotonic clock is `CLOCK_MONOTONIC_COARSE`
/// (a few ns per read, jiffy resolution); elsewhere `std::time::Instant`.
#[derive(Debug)]
pub struct SystemClock {
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    origin: Instant,
}

impl SystemClock {
    /// A new system clock.
    pub fn new() -> Self {
        SystemClock {
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            origin: Instant::now(),
        }
    }

    /// A shared system clock.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn mono_ns(&self) -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every
        // Linux since 2.6.32 and cannot fail with a valid pointer.
        unsafe {
            libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts);
        }
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn mono_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock for tests (feature `test-support`): both clocks start at real values and move only when told to.
///
/// [`advance`](ManualClock::advance) moves both clocks (time passes);
/// [`shift_wall`](ManualClock::shift_wall) moves only the wall clock (the user changed the
/// device's clock, or it was wrong all along).
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    mono_ns: AtomicU64,
}

#[cfg(any(test, feature = "test-support"))]
impl ManualClock {
    /// A manual clock starting at the current real wall time.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            wall_ms: AtomicI64::new(SystemClock::new().wall_ms()),
            mono_ns: AtomicU64::new(1_000_000_000),
        })
    }

    /// A manual clock starting at a given wall time.
    pub fn at_wall_ms(wall_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            wall_ms: AtomicI64::new(wall_ms),
            mono_ns: AtomicU64::new(1_000_000_000),
        })
    }

    /// Let time pass on both clocks.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        self.mono_ns.fetch_add(ns, Ordering::SeqCst);
    }

    /// Move only the device wall clock (positive: into the future).
    pub fn shift_wall(&self, by_ms: i64) {
        self.wall_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn mono_ns(&self) -> u64 {
        self.mono_ns.load(Ordering::SeqCst)
    }
}

/// The real monotonic clock with a device wall clock that is off by a fixed, adjustable amount:
/// for tests against real servers where the device's clock is wrong by hours (feature
/// `test-support`).
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug)]
pub struct SkewedClock {
    inner: SystemClock,
    skew_ms: AtomicI64,
}

#[cfg(any(test, feature = "test-support"))]
impl SkewedClock {
    /// A system clock whose wall time is off by `skew_ms`.
    pub fn new(skew_ms: i64) -> Arc<SkewedClock> {
        Arc::new(SkewedClock {
            inner: SystemClock::new(),
            skew_ms: AtomicI64::new(skew_ms),
        })
    }

    /// Change the skew (the user moved the clock while the app runs).
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Clock for SkewedClock {
    fn wall_ms(&self) -> i64 {
        self.inner.wall_ms().saturating_add(self.skew_ms.load(Ordering::SeqCst))
    }

    fn mono_ns(&self) -> u64 {
        self.inner.mono_ns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_monotonic_never_goes_back() {
        let c = SystemClock::new();
        let a = c.mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = c.mono_ns();
        assert!(b > a);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_wall_ms(1_000);
        assert_eq!(c.wall_ms(), 1_000);
        c.advance(std::time::Duration::from_secs(2));
        assert_eq!(c.wall_ms(), 3_000);
        let m = c.mono_ns();
        c.shift_wall(-10_000);
        assert_eq!(c.wall_ms(), -7_000);
        assert_eq!(c.mono_ns(), m);
    }
}
