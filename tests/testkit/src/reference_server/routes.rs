//! One connection: read the request, route it, apply a queued fault to refresh requests, answer.

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use super::fault::{Fault, FaultAction};
use super::http::{self, Request, Response};
use super::Shared;

/// How long a connection may stall while sending its request or reading our answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do with the connection after routing.
enum Reply {
    Send(Response),
    Hangup,
}

pub(super) fn serve_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let reply = match http::read_request(&stream) {
        Ok(request) => route(shared, &request, &stream),
        Err(error) => match error.response() {
            Some(response) => Reply::Send(response),
            None => Reply::Hangup,
        },
    };
    match reply {
        Reply::Send(response) => {
            if response.write_to(&stream, &shared.clock.http_date()).is_ok() {
                http::close_gracefully(&stream);
            }
        }
        // Dropping the stream closes it; the request was read in full, so this is a clean FIN.
        Reply::Hangup => {}
    }
}

fn route(shared: &Shared, request: &Request, stream: &TcpStream) -> Reply {
    let path = request.path.as_str();
    let expected_method = if path == shared.dialect.refresh_path() {
        "POST"
    } else {
        match path {
            "/protected" | "/test/stats" => "GET",
            "/test/login"
            | "/test/fault"
            | "/test/clear-faults"
            | "/test/revoke"
            | "/test/advance-clock"
            | "/oauth/revoke" => "POST",
            _ => return Reply::Send(Response::json(404, &json!({ "error": "not found", "path": path }))),
        }
    };
    if request.method != expected_method {
        return Reply::Send(
            Response::json(405, &json!({ "error": "method not allowed" })).with_header("Allow", expected_method),
        );
    }
    if path == shared.dialect.refresh_path() {
        return refresh(shared, request, stream);
    }
    Reply::Send(match path {
        "/protected" => protected(shared, request),
        "/test/stats" => stats(shared),
        "/test/login" => login(shared, request),
        "/test/fault" => push_fault(shared, request),
        "/test/clear-faults" => {
            shared.faults.lock().clear();
            Response::json(200, &json!({ "cleared": true }))
        }
        "/test/revoke" => revoke(shared, request),
        "/oauth/revoke" => oauth_revoke(shared, request),
        _ => advance_clock(shared, request),
    })
}

fn refresh(shared: &Shared, request: &Request, stream: &TcpStream) -> Reply {
    let fault = shared.faults.lock().pop_front();
    {
        let mut stats = shared.stats.lock();
        stats.refresh_requests += 1;
        if fault.is_some() {
            stats.faults_applied += 1;
        }
    }
    let Some(fault) = fault else {
        return Reply::Send(shared.refresh(request));
    };
    match fault.action(shared.dialect) {
        FaultAction::Respond(response) => Reply::Send(response),
        FaultAction::Hangup => Reply::Hangup,
        FaultAction::DelayThenProcess(delay) => {
            thread::sleep(delay);
            if client_hung_up(stream) {
                shared.stats.lock().requests_abandoned += 1;
                Reply::Hangup
            } else {
                Reply::Send(shared.refresh(request))
            }
        }
        FaultAction::ProcessThenHangup => {
            let _lost = shared.refresh(request);
            Reply::Hangup
        }
    }
}

/// Whether the peer has closed its side (its own timeout fired) while we were busy.
fn client_hung_up(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut probe = [0u8; 1];
    let gone = match stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    gone
}

fn protected(shared: &Shared, request: &Request) -> Response {
    let user = request.bearer().and_then(|token| shared.check_access(token));
    let mut stats = shared.stats.lock();
    match user {
        Some(sub) => {
            stats.protected_ok += 1;
            Response::json(200, &json!({ "sub": sub }))
        }
        None => {
            stats.protected_rejected += 1;
            Response::json(401, &json!({ "error": "invalid_token" }))
                .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
        }
    }
}

fn stats(shared: &Shared) -> Response {
    let s = shared.stats.lock().clone();
    Response::json(
        200,
        &json!({
            "refresh_requests": s.refresh_requests,
            "refresh_successes": s.refresh_successes,
            "refresh_failures": s.refresh_failures,
            "reuse_detections": s.reuse_detections,
            "families_revoked": s.families_revoked,
            "rfc7009_revocations": s.rfc7009_revocations,
            "protected_ok": s.protected_ok,
            "protected_rejected": s.protected_rejected,
            "faults_applied": s.faults_applied,
            "requests_abandoned": s.requests_abandoned,
        }),
    )
}

/// The JSON object body of a `/test/…` request, or a 400 saying what was expected.
fn test_body(request: &Request, expected: &str) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(bad_request(&format!("expected a JSON body like {expected}"))),
    }
}

fn bad_request(message: &str) -> Response {
    Response::json(400, &json!({ "error": message }))
}

fn login(shared: &Shared, request: &Request) -> Response {
    let body = match test_body(request, r#"{"user":"alice"}"#) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(user) = body.get("user").and_then(Value::as_str) else {
        return bad_request("\"user\" must be a string");
    };
    let tokens = shared.login(user);
    if body.get("answer").and_then(Value::as_str) == Some("dialect") {
        // The login answered as the dialect answers a refresh (its own envelope and field names),
        // what a host hands to `store_response`. Seed 000's answer holds only the access token:
        // its entity token comes back in a header.
        return shared
            .dialect
            .success_response(&tokens)
            .with_header("X-Test-Refresh-Credential", tokens.refresh_credential.clone());
    }
    Response::json(
        200,
        &json!({
            "accessToken": tokens.access_token,
            "refreshCredential": tokens.refresh_credential,
        }),
    )
}

fn push_fault(shared: &Shared, request: &Request) -> Response {
    let body = match test_body(request, r#"{"fault":"status","status":503}"#) {
        Ok(body) => body,
        Err(response) => return response,
    };
    match Fault::from_json(&body) {
        Ok(fault) => {
            let mut faults = shared.faults.lock();
            faults.push_back(fault);
            Response::json(200, &json!({ "queued": faults.len() }))
        }
        Err(message) => bad_request(&message),
    }
}

fn revoke(shared: &Shared, request: &Request) -> Response {
    let body = match test_body(request, r#"{"token":"…"}"#) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(token) = body.get("token").and_then(Value::as_str) else {
        return bad_request("\"token\" must be a string");
    };
    Response::json(200, &json!({ "revoked": shared.revoke_family_of(token) }))
}

/// An RFC 7009 revocation endpoint (none of the seed documents has one; a host describes it
/// with `revocation_url`): form `token=…[&token_type_hint=…]`; 200 whether or not the token was
/// known (RFC 7009 §2.2), 400 `invalid_request` without a token. Revoking a refresh token ends
/// its family, as a server-side logout does.
fn oauth_revoke(shared: &Shared, request: &Request) -> Response {
    let body = String::from_utf8_lossy(&request.body);
    let token = body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| form_decode(v))
    });
    match token {
        Some(t) if !t.is_empty() => {
            shared.stats.lock().rfc7009_revocations += 1;
            shared.revoke_family_of(&t);
            Response::json(200, &json!({}))
        }
        _ => Response::json(400, &json!({ "error": "invalid_request" })),
    }
}

fn form_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&v[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn advance_clock(shared: &Shared, request: &Request) -> Response {
    let body = match test_body(request, r#"{"ms":1000}"#) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(ms) = body.get("ms").and_then(Value::as_u64) else {
        return bad_request("\"ms\" must be a non-negative integer");
    };
    shared.clock.advance(Duration::from_millis(ms));
    Response::json(200, &json!({ "now_ms": shared.clock.now_ms() }))
}
