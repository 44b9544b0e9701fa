//! Fault switches: ways the refresh endpoint misbehaves, one per refresh request.
//!
//! Faults are queued with [`ReferenceServer::push_fault`](super::ReferenceServer::push_fault) (or
//! `POST /test/fault`) and consumed first in, first out by `POST` requests to the dialect's refresh
//! path, one per request; requests to other routes never consume one. The request is always read in
//! full first. Only [`Fault::Delay`] (when the client is still there) and
//! [`Fault::LoseResponseAfterRotate`] touch the token state; every other fault leaves it unchanged.

use std::time::Duration;

use serde_json::{json, Value};

use super::dialect::Dialect;
use super::http::Response;

/// Where [`Fault::CaptivePortal`] redirects to.
pub const CAPTIVE_PORTAL_LOCATION: &str = "http://captive.invalid/login";

/// One misbehaviour of the refresh endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and no token change. 5xx: an HTML error page, as a proxy or load
    /// balancer would send; 401: the dialect's own failure body; anything else: a small JSON body.
    Status(u16),
    /// 429 with `Retry-After: <retry_after_secs>` and a JSON body.
    Throttle {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Sleep this long, then — if the client is still connected — answer normally. A client that
    /// hung up meanwhile (its own timeout) is dropped without touching the token state, as a server
    /// that cancels work on disconnect; `Stats::requests_abandoned` counts those.
    Delay(Duration),
    /// Close the socket without any response, before rotating anything.
    DropConnection,
    /// 200 with `Content-Type: application/json` and bytes that are not JSON.
    Garbage,
    /// HTTP 200 whose body says failure: `000` `{status:"error", code:401, …}`, `001`
    /// `{success:false, error:{type:"AUTHENTICATION", …}}`, `002` `{}` (no tokens).
    EnvelopeFailure,
    /// 302 to [`CAPTIVE_PORTAL_LOCATION`] with an HTML body, like a hotel Wi-Fi login.
    CaptivePortal,
    /// 200 `text/html` login page.
    HtmlOk,
    /// Perform the refresh (rotation included) in server state, then close the socket without
    /// answering: the client never learns its new tokens.
    LoseResponseAfterRotate,
    /// 200 JSON response body of exactly this many bytes (`{"padding":"xxx…"}`), streamed.
    Oversized(usize),
}

/// What the server does with a request that drew a fault.
#[derive(Debug)]
pub(crate) enum FaultAction {
    /// Send this instead of processing the request.
    Respond(Response),
    /// Close without a response, without processing.
    Hangup,
    /// Sleep, then process normally unless the client left.
    DelayThenProcess(Duration),
    /// Process, then close without a response.
    ProcessThenHangup,
}

const GARBAGE: &[u8] = b"<<not json>> \x00\xff\xfe {\"accessToken\": truncated";

const CAPTIVE_PAGE: &str = "<!DOCTYPE html><html><head><title>Network Login</title></head>\
<body><h1>Welcome to Guest Wi-Fi</h1><p>Please <a href=\"http://captive.invalid/login\">sign in\
</a> to continue.</p></body></html>";

const LOGIN_PAGE: &str = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>\
<form method=\"post\" action=\"/login\"><input name=\"user\"><input name=\"password\" \
type=\"password\"><button>Sign in</button></form></body></html>";

impl Fault {
    pub(crate) fn action(&self, dialect: Dialect) -> FaultAction {
        let respond = FaultAction::Respond;
        match self {
            Fault::Status(401) => respond(dialect.failure_response(401, "injected fault")),
            Fault::Status(status) if (500..=599).contains(status) => {
                let reason = super::http::reason_phrase(*status);
                respond(Response::html(
                    *status,
                    &format!(
                        "<!DOCTYPE html><html><head><title>{status} {reason}</title></head>\
                         <body><h1>{status} {reason}</h1><hr><center>nginx</center></body></html>"
                    ),
                ))
            }
            Fault::Status(status) => respond(Response::json(
                *status,
                &json!({ "error": "injected fault", "status": status }),
            )),
            Fault::Throttle { retry_after_secs } => respond(
                Response::json(429, &json!({ "error": "too many requests" }))
                    .with_header("Retry-After", retry_after_secs.to_string()),
            ),
            Fault::Delay(delay) => FaultAction::DelayThenProcess(*delay),
            Fault::DropConnection => FaultAction::Hangup,
            Fault::Garbage => respond(Response::raw(200, Some("application/json"), GARBAGE.to_vec())),
            Fault::EnvelopeFailure => respond(dialect.envelope_failure_response()),
            Fault::CaptivePortal => {
                respond(Response::html(302, CAPTIVE_PAGE).with_header("Location", CAPTIVE_PORTAL_LOCATION))
            }
            Fault::HtmlOk => respond(Response::html(200, LOGIN_PAGE)),
            Fault::LoseResponseAfterRotate => FaultAction::ProcessThenHangup,
            Fault::Oversized(len) => respond(Response::oversized_json(*len)),
        }
    }

    /// Parses the JSON of `POST /test/fault`:
    /// `{"fault":"status","status":503}`, `{"fault":"throttle","retry_after_secs":2}`,
    /// `{"fault":"delay","ms":1500}`, `{"fault":"drop"}`, `{"fault":"garbage"}`,
    /// `{"fault":"envelope_failure"}`, `{"fault":"captive_portal"}`, `{"fault":"html_ok"}`,
    /// `{"fault":"lose_response"}`, `{"fault":"oversized","bytes":1048576}`.
    pub fn from_json(value: &Value) -> Result<Fault, String> {
        let name = value
            .get("fault")
            .and_then(Value::as_str)
            .ok_or("\"fault\" must be a string")?;
        let number = |field: &str| {
            value
                .get(field)
                .and_then(Value::as_u64)
                .ok_or(format!("fault {name:?} needs a non-negative integer {field:?}"))
        };
        Ok(match name {
            "status" => Fault::Status(
                u16::try_from(number("status")?)
                    .ok()
                    .filter(|s| (100..=999).contains(s))
                    .ok_or("\"status\" must be within 100..=999")?,
            ),
            "throttle" => Fault::Throttle {
                retry_after_secs: number("retry_after_secs")?,
            },
            "delay" => Fault::Delay(Duration::from_millis(number("ms")?)),
            "drop" | "drop_connection" => Fault::DropConnection,
            "garbage" => Fault::Garbage,
            "envelope_failure" => Fault::EnvelopeFailure,
            "captive_portal" => Fault::CaptivePortal,
            "html_ok" => Fault::HtmlOk,
            "lose_response" | "lose_response_after_rotate" => Fault::LoseResponseAfterRotate,
            "oversized" => Fault::Oversized(usize::try_from(number("bytes")?).map_err(|_| "\"bytes\" too large")?),
            other => return Err(format!("unknown fault {other:?}")),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_fault() {
        let cases = [
            (json!({"fault": "status", "status": 503}), Fault::Status(503)),
            (
                json!({"fault": "throttle", "retry_after_secs": 2}),
                Fault::Throttle { retry_after_secs: 2 },
            ),
            (
                json!({"fault": "delay", "ms": 250}),
                Fault::Delay(Duration::from_millis(250)),
            ),
            (json!({"fault": "drop"}), Fault::DropConnection),
            (json!({"fault": "garbage"}), Fault::Garbage),
            (json!({"fault": "envelope_failure"}), Fault::EnvelopeFailure),
            (json!({"fault": "captive_portal"}), Fault::CaptivePortal),
            (json!({"fault": "html_ok"}), Fault::HtmlOk),
            (json!({"fault": "lose_response"}), Fault::LoseResponseAfterRotate),
            (json!({"fault": "oversized", "bytes": 70000}), Fault::Oversized(70000)),
        ];
        for (value, fault) in cases {
            assert_eq!(Fault::from_json(&value), Ok(fault));
        }
        for bad in [
            json!({}),
            json!({"fault": 3}),
            json!({"fault": "status"}),
            json!({"fault": "status", "status": 70000}),
            json!({"fault": "delay", "ms": -1}),
            json!({"fault": "nope"}),
        ] {
            assert!(Fault::from_json(&bad).is_err(), "{bad}");
        }
    }
}
