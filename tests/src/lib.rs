//! Shared fixtures for tokenvault's cross-cutting tests and the demo: a vault in a temporary
//! directory wired to a local reference server or to oidc-provider.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tokenvault::{AccessToken, Clock, KeySource, NewSession, Preset, Profile, Vault, VaultError, VaultOptions};
use tokenvault_testkit::{Dialect, ReferenceServer};

pub use tokenvault_testkit as testkit;

/// The raw key the fixtures use.
pub const TEST_KEY: [u8; 32] = [0x5A; 32];

/// The preset that speaks a reference server's dialect.
pub fn preset_for(dialect: Dialect) -> Preset {
    match dialect {
        Dialect::EntityToken => Preset::EntityTokenEnvelope,
        Dialect::SuccessEnvelope => Preset::RotatingSuccessEnvelope,
        Dialect::VersionedBearer => Preset::RotatingBearerVersioned,
    }
}

/// A profile named `name` for a running reference server (with extra settings merged in).
pub fn profile_for(server: &ReferenceServer, name: &str, extra: serde_json::Value) -> Result<Profile, VaultError> {
    let mut settings = serde_json::json!({"api_key": server.config().api_key});
    if let (Some(s), serde_json::Value::Object(e)) = (settings.as_object_mut(), extra) {
        s.extend(e);
    }
    Profile::preset(preset_for(server.dialect()), name, &server.refresh_url(), settings)
}

/// Open a vault at `path` with [`TEST_KEY`] and the given clock.
pub fn open_vault(path: &Path, clock: Arc<dyn Clock>) -> Result<Vault, VaultError> {
    Vault::open(
        path,
        KeySource::raw(&TEST_KEY)?,
        VaultOptions {
            clock,
            ..VaultOptions::default()
        },
    )
}

/// Sign `user` in at the reference server and store the session under `account`.
pub fn login_and_store(
    vault: &Vault,
    server: &ReferenceServer,
    account: &str,
    profile: &str,
) -> Result<(), VaultError> {
    let t = server.login(account);
    vault.store(NewSession::new(account, profile, t.access_token).refresh_credential(t.refresh_credential))?;
    Ok(())
}

/// Poll `f` until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Release `n` threads at once (a barrier), each asking `vault` for `account`'s token; the tokens
/// they got, in thread order. Small stacks, so a thousand threads fit comfortably.
pub fn read_from_threads(vault: &Arc<Vault>, account: &str, n: usize) -> Vec<Result<AccessToken, VaultError>> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (v, b, a) = (Arc::clone(vault), Arc::clone(&barrier), account.to_owned());
            std::thread::Builder::new().stack_size(128 * 1024).spawn(move || {
                b.wait();
                v.access_token(&a)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| match h {
            Ok(h) => h.join().unwrap_or_else(|_| {
                Err(VaultError::Internal {
                    reason: "reader thread panicked".into(),
                })
            }),
            Err(_) => Err(VaultError::Internal {
                reason: "could not spawn a reader thread".into(),
            }),
        })
        .collect()
}
