//! The records the engine writes: a host's new session, and a session after a refresh.

use std::time::Duration;

use crate::profile::Profile;
use crate::secret::TokenText;
use crate::session::{anchor_times, NewSession, ReceivedTokens, RefreshExpiry, SessionRecord};

fn ms_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The record of a session the host signed in (times anchored on the login response's `Date`
/// when it came through `store_response`, else on the JWT's `iat` or the device clock).
pub(crate) fn new_record(session: &NewSession, profile: &Profile, device_now_ms: i64) -> SessionRecord {
    let times = anchor_times(
        session.access_token.expose(),
        session.expires,
        session.server_date_ms,
        device_now_ms,
        0,
        profile.default_lifetime(),
    );
    let offline = session.offline || session.refresh_expiry == RefreshExpiry::Offline;
    let refresh_expires_at_ms = if offline {
        None
    } else {
        match session.refresh_expiry {
            RefreshExpiry::InSecs(s) => Some(times.server_now_ms.saturating_add(s.saturating_mul(1000))),
            RefreshExpiry::AtMs(ms) => Some(ms),
            RefreshExpiry::Offline | RefreshExpiry::Unknown => profile
                .refresh_lifetime()
                .map(|d| times.server_now_ms.saturating_add(ms_i64(d))),
        }
    };
    SessionRecord {
        account: session.account.as_str().into(),
        profile: session.profile.as_str().into(),
        access_token: TokenText::new(session.access_token.expose()),
        refresh_credential: session.refresh_credential.clone(),
        token_type: session.token_type.as_deref().map(Into::into),
        scope: session.scope.as_deref().map(Into::into),
        issued_at_ms: times.issued_at_ms,
        access_expires_at_ms: times.access_expires_at_ms,
        refresh_expires_at_ms,
        offline,
        clock_offset_ms: times.clock_offset_ms,
        hints: session.hints.clone(),
        created_at_ms: times.server_now_ms,
        refresh_count: 0,
        origin: Some(profile.origin().into()),
        verdict: None,
        legacy_reauth: None,
        identity: session.identity.clone().map(Box::new),
    }
}

/// The record after a successful refresh: new tokens and times, the old refresh credential
/// kept when the response has none.
pub(crate) fn record_after_refresh(
    base: &SessionRecord,
    rx: ReceivedTokens,
    profile: &Profile,
    device_now_ms: i64,
) -> SessionRecord {
    let t = anchor_times(
        rx.access_token.expose(),
        rx.expires,
        rx.server_date_ms,
        device_now_ms,
        base.clock_offset_ms,
        profile.default_lifetime(),
    );
    let rotated = rx.refresh_credential.is_some();
    let (refresh_expires_at_ms, offline) = match rx.refresh_expiry {
        RefreshExpiry::Offline => (None, true),
        RefreshExpiry::InSecs(s) => (Some(t.server_now_ms.saturating_add(s.saturating_mul(1000))), false),
        RefreshExpiry::AtMs(ms) => (Some(ms), false),
        RefreshExpiry::Unknown if rotated => (
            profile
                .refresh_lifetime()
                .map(|d| t.server_now_ms.saturating_add(ms_i64(d)))
                .or(base.refresh_expires_at_ms),
            base.offline,
        ),
        RefreshExpiry::Unknown => (base.refresh_expires_at_ms, base.offline),
    };
    SessionRecord {
        account: base.account.clone(),
        profile: base.profile.clone(),
        access_token: TokenText::new(rx.access_token.expose()),
        refresh_credential: rx.refresh_credential.or_else(|| base.refresh_credential.clone()),
        token_type: rx.token_type.map(Into::into).or_else(|| base.token_type.clone()),
        scope: rx.scope.map(Into::into).or_else(|| base.scope.clone()),
        issued_at_ms: t.issued_at_ms,
        access_expires_at_ms: t.access_expires_at_ms,
        refresh_expires_at_ms,
        offline,
        clock_offset_ms: t.clock_offset_ms,
        hints: base.hints.clone(),
        created_at_ms: base.created_at_ms,
        refresh_count: base.refresh_count.saturating_add(1),
        origin: base.origin.clone().or_else(|| Some(profile.origin().into())),
        verdict: None,
        legacy_reauth: None,
        // A response without an id_token keeps the claims of the last one (OpenID Connect
        // Core §12.2: a refresh response may omit it).
        identity: rx.identity.or_else(|| base.identity.clone()),
    }
}
