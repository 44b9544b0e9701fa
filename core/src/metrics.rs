//! What a vault did, counted without a secret or an account id: [`Vault::metrics`] returns a
//! [`VaultMetrics`] snapshot.
//!
//! The cached read is the hot path: its hits are counted in each reading thread's own slot of
//! the session cache, and a snapshot sums the slots. Everything else is counted here, on the
//! refresh path, which does file and network I/O anyway.
//!
//! [`Vault::metrics`]: crate::Vault::metrics

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::ErrorCode;

/// How many recent transport latencies the percentiles are computed over.
pub const LATENCY_WINDOW: usize = 1024;

/// A plain event counter (refresh path only).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The live counters of one vault.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub refreshes_started: Counter,
    pub refreshes_succeeded: Counter,
    failed: [Counter; ErrorCode::ALL.len()],
    pub flight_joins: Counter,
    pub lock_waits: Counter,
    pub lock_takeovers: Counter,
    pub lost_answers: Counter,
    pub responses: Counter,
    pub response_bytes: Counter,
    latencies: Mutex<VecDeque<u32>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            refreshes_started: Counter::default(),
            refreshes_succeeded: Counter::default(),
            failed: Default::default(),
            flight_joins: Counter::default(),
            lock_waits: Counter::default(),
            lock_takeovers: Counter::default(),
            lost_answers: Counter::default(),
            responses: Counter::default(),
            response_bytes: Counter::default(),
            latencies: Mutex::new(VecDeque::with_capacity(LATENCY_WINDOW)),
        }
    }
}

impl Metrics {
    /// A refresh attempt ended: `Ok` or the error's code.
    pub(crate) fn refresh_ended(&self, result: std::result::Result<(), ErrorCode>) {
        match result {
            Ok(()) => self.refreshes_succeeded.add_one(),
            Err(code) => self.failed[code as usize].add_one(),
        }
    }

    /// A request went through the transport (an answer or a network failure) in `elapsed`;
    /// `bytes` of response body came back.
    pub(crate) fn transport_done(&self, elapsed: Duration, bytes: usize) {
        self.responses.add_one();
        self.response_bytes.add(u64::try_from(bytes).unwrap_or(u64::MAX));
        let us = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        let mut window = self.latencies.lock();
        if window.len() == LATENCY_WINDOW {
            window.pop_front();
        }
        window.push_back(us);
    }

    /// The counters now, with the cached hits counted by the session cache.
    pub(crate) fn snapshot(&self, cached_hits: u64) -> VaultMetrics {
        let (p50, p99) = {
            let mut sorted: Vec<u32> = self.latencies.lock().iter().copied().collect();
            sorted.sort_unstable();
            (percentile(&sorted, 50), percentile(&sorted, 99))
        };
        let refreshes_failed = ErrorCode::ALL
            .iter()
            .filter_map(|&code| {
                let n = self.failed[code as usize].get();
                (n > 0).then_some((code, n))
            })
            .collect();
        VaultMetrics {
            cached_hits,
            refreshes_started: self.refreshes_started.get(),
            refreshes_succeeded: self.refreshes_succeeded.get(),
            refreshes_failed,
            single_flight_joins: self.flight_joins.get(),
            lock_waits: self.lock_waits.get(),
            lock_takeovers: self.lock_takeovers.get(),
            lost_answer_markers: self.lost_answers.get(),
            transport_requests: self.responses.get(),
            transport_latency_p50_us: p50,
            transport_latency_p99_us: p99,
            response_bytes: self.response_bytes.get(),
        }
    }
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u32], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(u64::from(sorted[rank - 1]))
}

/// A snapshot of what a vault did since it was opened. Counts only: no token, no account id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VaultMetrics {
    /// Reads answered from the cache without any refresh or file access.
    pub cached_hits: u64,
    /// Refresh requests this vault built to send (blocking and two-step).
    pub refreshes_started: u64,
    /// Attempts that ended with a stored pair (a rotation of ours or a peer's).
    pub refreshes_succeeded: u64,
    /// Attempts that ended with an error, by its code (codes that never occurred are left out).
    pub refreshes_failed: Vec<(ErrorCode, u64)>,
    /// Callers that waited for a refresh already in flight in this vault instead of sending.
    pub single_flight_joins: u64,
    /// Times the account's cross-process refresh lock was held by a peer (another process or
    /// vault instance) when this vault wanted to refresh.
    pub lock_waits: u64,
    /// Times this vault took the refresh lock after waiting for a peer that then left no new
    /// pair (it failed, or died): this vault refreshed in its place.
    pub lock_takeovers: u64,
    /// Attempts that found the lost-answer marker of an earlier attempt with the same
    /// credential: a request was sent before and its answer never stored.
    pub lost_answer_markers: u64,
    /// Requests that went through the transport (answered, or failed on the network).
    pub transport_requests: u64,
    /// Median transport latency over the last [`LATENCY_WINDOW`] requests, in µs (nearest rank).
    pub transport_latency_p50_us: Option<u64>,
    /// 99th percentile of the same window, in µs (nearest rank).
    pub transport_latency_p99_us: Option<u64>,
    /// Response body bytes received.
    pub response_bytes: u64,
}

impl VaultMetrics {
    /// Failed attempts of every code together.
    pub fn refreshes_failed_total(&self) -> u64 {
        self.refreshes_failed.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let m = Metrics::default();
        assert_eq!(m.snapshot(0).transport_latency_p50_us, None);
        for us in 1..=100u64 {
            m.transport_done(Duration::from_micros(us), 10);
        }
        let s = m.snapshot(0);
        assert_eq!(s.transport_latency_p50_us, Some(50));
        assert_eq!(s.transport_latency_p99_us, Some(99));
        assert_eq!(s.transport_requests, 100);
        assert_eq!(s.response_bytes, 1000);
    }

    #[test]
    fn the_window_keeps_the_latest_requests() {
        let m = Metrics::default();
        for _ in 0..LATENCY_WINDOW {
            m.transport_done(Duration::from_secs(1), 0);
        }
        for _ in 0..LATENCY_WINDOW {
            m.transport_done(Duration::from_micros(7), 0);
        }
        assert_eq!(m.snapshot(0).transport_latency_p99_us, Some(7));
    }

    #[test]
    fn failures_by_code() {
        let m = Metrics::default();
        m.refresh_ended(Err(ErrorCode::Transient));
        m.refresh_ended(Err(ErrorCode::Transient));
        m.refresh_ended(Err(ErrorCode::ReauthenticationRequired));
        m.refresh_ended(Ok(()));
        let s = m.snapshot(0);
        assert_eq!(
            s.refreshes_failed,
            vec![(ErrorCode::ReauthenticationRequired, 1), (ErrorCode::Transient, 2)]
        );
        assert_eq!(s.refreshes_failed_total(), 3);
        assert_eq!(s.refreshes_succeeded, 1);
    }
}
