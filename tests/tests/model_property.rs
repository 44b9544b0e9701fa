//! Property test: random sequences of store / read / refresh / remove / rekey / reopen keep the
//! vault consistent with a simple model (which accounts exist, which token each one serves,
//! which key opens the file). Refreshes go to a real reference server (seed 001, rotating).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tokenvault::{KeySource, ManualClock, NewSession, Vault, VaultError, VaultOptions};
use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};
use tokenvault_tests::profile_for;

#[derive(Debug, Clone)]
enum Op {
    Store(usize),
    Read(usize),
    Refresh(usize),
    Remove(usize),
    Rekey(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4usize).prop_map(Op::Store),
        4 => (0..4usize).prop_map(Op::Read),
        2 => (0..4usize).prop_map(Op::Refresh),
        1 => (0..4usize).prop_map(Op::Remove),
        1 => (1..4u8).prop_map(Op::Rekey),
        1 => Just(Op::Reopen),
    ]
}

fn open(path: &std::path::Path, key: u8, clock: &Arc<ManualClock>, server: &ReferenceServer) -> Vault {
    let v = Vault::open(
        path,
        KeySource::raw(&[key; 32]).unwrap(),
        VaultOptions {
            clock: clock.clone(),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    v.register_profile(profile_for(server, "p", serde_json::json!({})).unwrap())
        .unwrap();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let clock = ManualClock::new();
        let mut key = 0u8;
        let mut vault = open(&path, key, &clock, &server);
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        let mut last_generation: BTreeMap<String, u64> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Store(i) => {
                    let a = format!("acct-{i}");
                    let t = server.login(&a);
                    let info = vault.store(NewSession::new(a.as_str(), "p", t.access_token.clone()).refresh_credential(t.refresh_credential)).unwrap();
                    // An account's generations only grow, across refreshes, logouts and sign-ins.
                    prop_assert!(info.generation > last_generation.get(&a).copied().unwrap_or(0));
                    last_generation.insert(a.clone(), info.generation);
                    model.insert(a, t.access_token);
                }
                Op::Read(i) => {
                    let a = format!("acct-{i}");
                    match (vault.access_token(&a), model.get(&a)) {
                        (Ok(t), Some(m)) => prop_assert_eq!(t.expose(), m.as_str()),
                        (Err(VaultError::NotFound), None) => {}
                        (r, m) => prop_assert!(false, "read {a}: {r:?} vs model {m:?}"),
                    }
                }
                Op::Refresh(i) => {
                    let a = format!("acct-{i}");
                    match (vault.force_refresh(&a), model.get(&a).cloned()) {
                        (Ok(t), Some(m)) => {
                            prop_assert_ne!(t.expose(), m.as_str());
                            prop_assert!(server.check_access(t.expose()));
                            prop_assert!(t.generation() > last_generation.get(&a).copied().unwrap_or(0));
                            last_generation.insert(a.clone(), t.generation());
                            model.insert(a, t.expose().to_owned());
                        }
                        (Err(VaultError::NotFound), None) => {}
                        (r, m) => prop_assert!(false, "refresh {a}: {r:?} vs model {m:?}"),
                    }
                }
                Op::Remove(i) => {
                    let a = format!("acct-{i}");
                    prop_assert_eq!(vault.remove(&a).unwrap(), model.remove(&a).is_some());
                }
                Op::Rekey(k) => {
                    vault.rekey(KeySource::raw(&[k; 32]).unwrap()).unwrap();
                    key = k;
                }
                Op::Reopen => {
                    vault.close().unwrap();
                    if key != 9 {
                        prop_assert_eq!(Vault::open(&path, KeySource::raw(&[9; 32]).unwrap(), VaultOptions::default()).unwrap_err(), VaultError::WrongKey);
                    }
                    vault = open(&path, key, &clock, &server);
                }
            }
            prop_assert_eq!(vault.list_accounts().unwrap(), model.keys().cloned().collect::<Vec<_>>());
        }
        prop_assert_eq!(server.stats().reuse_detections, 0);
    }
}
