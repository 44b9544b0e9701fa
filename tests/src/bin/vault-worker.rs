//! A separate process that uses a shared vault file, for the multi-process and crash tests.
//!
//! ```text
//! vault-worker cycle --db PATH --profile JSON --account A --cycles N --protected URL [--refresh-point F]
//!     read tokens until N new generations were seen; check each at the protected resource,
//!     reporting a 401 to the vault (report_rejected) and checking again; print a JSON summary.
//! vault-worker crash-loop --db PATH --profile JSON --accounts A,B --login URL
//!     force refreshes and re-store sessions in a loop until killed; on a dead session, sign in
//!     again through the server's test login.
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use tokenvault::{ErrorCode, KeySource, NewSession, RefreshPolicy, SystemClock, Vault, VaultOptions};
use tokenvault_tests::TEST_KEY;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn need(args: &[String], name: &str) -> Result<String, Box<dyn Error>> {
    arg(args, name).ok_or_else(|| format!("missing {name}").into())
}

fn open(args: &[String]) -> Result<Vault, Box<dyn Error>> {
    let refresh_point: f64 = arg(args, "--refresh-point")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(0.75);
    let vault = Vault::open(
        need(args, "--db")?,
        KeySource::raw(&TEST_KEY)?,
        VaultOptions {
            clock: SystemClock::shared(),
            policy: RefreshPolicy {
                refresh_point,
                jitter: 0.0,
                ..RefreshPolicy::default()
            },
            busy_timeout: Duration::from_secs(30),
            transport: None,
            anchor: None,
        },
    )?;
    vault.load_profile_json(&need(args, "--profile")?)?;
    Ok(vault)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn protected_ok(agent: &ureq::Agent, url: &str, token: &str) -> Result<bool, Box<dyn Error>> {
    let status = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()?
        .status()
        .as_u16();
    Ok(status == 200)
}

fn cycle(args: &[String]) -> Result<(), Box<dyn Error>> {
    let vault = open(args)?;
    let account = need(args, "--account")?;
    let cycles: u64 = need(args, "--cycles")?.parse()?;
    let protected = need(args, "--protected")?;
    let agent = agent();
    let mut seen = std::collections::BTreeSet::new();
    let (mut checks, mut recovered, mut failures) = (0u64, 0u64, 0u64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    // What a failing run needs to be understood: the first message of each error code, and
    // the timings of the first failed checks (no secrets: vault messages carry none).
    let mut error_messages: BTreeMap<String, String> = BTreeMap::new();
    let mut failure_details = Vec::new();
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(120);
    while (seen.len() as u64) < cycles && std::time::Instant::now() < deadline {
        match vault.access_token(&account) {
            Ok(t) => {
                let got = std::time::Instant::now();
                seen.insert(t.generation());
                checks += 1;
                if !protected_ok(&agent, &protected, t.expose())? {
                    let first_check_ms = got.elapsed().as_millis();
                    // A peer rotated (and the server revoked our copy), or it just expired.
                    let t2 = vault.report_rejected(&account, t.expose())?;
                    let got2 = std::time::Instant::now();
                    if protected_ok(&agent, &protected, t2.expose())? {
                        recovered += 1;
                    } else {
                        failures += 1;
                        if failure_details.len() < 5 {
                            failure_details.push(serde_json::json!({
                                "at_ms": started.elapsed().as_millis(),
                                "generation": t.generation(),
                                "ms_to_first_check": first_check_ms,
                                "generation_after_401": t2.generation(),
                                "ms_to_second_check": got2.elapsed().as_millis(),
                                "access_remaining_ms_now": vault.session_info(&account).ok().map(|i| i.access_remaining_ms),
                            }));
                        }
                    }
                }
            }
            Err(e) => {
                let code = e.code().name().to_owned();
                error_messages.entry(code.clone()).or_insert_with(|| e.to_string());
                *errors.entry(code).or_default() += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "{}",
        serde_json::json!({
            "generations_seen": seen.len(),
            "checks": checks,
            "recovered_after_401": recovered,
            "failures": failures,
            "errors": errors,
            "error_messages": error_messages,
            "failure_details": failure_details,
            "elapsed_ms": started.elapsed().as_millis(),
        })
    );
    Ok(())
}

fn crash_loop(args: &[String]) -> Result<(), Box<dyn Error>> {
    let vault = Arc::new(open(args)?);
    let accounts: Vec<String> = need(args, "--accounts")?.split(',').map(str::to_owned).collect();
    let login = need(args, "--login")?;
    let profile = tokenvault::Profile::from_json(&need(args, "--profile")?)?
        .name()
        .to_owned();
    let agent = agent();
    loop {
        for account in &accounts {
            match vault.force_refresh(account) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorCode::RefreshOutcomeUnknown | ErrorCode::ReauthenticationRequired
                    ) =>
                {
                    // The previous process died after the server rotated: sign in again.
                    let body = agent
                        .post(&login)
                        .header("Content-Type", "application/json")
                        .send(serde_json::json!({"user": account}).to_string())?
                        .body_mut()
                        .read_to_string()?;
                    let v: serde_json::Value = serde_json::from_str(&body)?;
                    let (Some(a), Some(r)) = (v["accessToken"].as_str(), v["refreshCredential"].as_str()) else {
                        return Err("bad login answer".into());
                    };
                    vault.store(NewSession::new(account.as_str(), profile.as_str(), a).refresh_credential(r))?;
                }
                Err(e) => return Err(Box::new(e)),
            }
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("cycle") => cycle(&args),
        Some("crash-loop") => crash_loop(&args),
        _ => Err("usage: vault-worker cycle|crash-loop ...".into()),
    }
}
