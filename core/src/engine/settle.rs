//! What an attempt's outcome means for the session: one pure decision, no I/O.
//!
//! [`settle`] takes the facts of an attempt (forced or not, whether an earlier request with the
//! same credential went unanswered, whether the base token is still usable) and what came back
//! (an answer the profile read, or no answer), and decides:
//!
//! * [`Settlement::Commit`]: store the new pair (compare-and-swap on the base generation);
//! * [`Settlement::Verdict`]: the server refused the credential; unless the store changed
//!   meanwhile (a peer rotated it), the session ends with this typed verdict — code 1, or
//!   code 12 when an earlier request carrying the same credential lost its answer;
//! * [`Settlement::Failed`]: the session lives on; whether the lost-answer marker must stay
//!   (the request may have been consumed) and whether a still-usable token is served instead.
//!
//! The coordinator applies the settlement; tests here pin every branch.

use crate::error::VaultError;
use crate::session::{ReceivedTokens, Verdict};
use crate::transport::{TransportError, TransportErrorKind};

/// What came back from one request.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The server answered and the profile read it: new tokens, or a typed failure.
    Answer(crate::error::Result<ReceivedTokens>),
    /// No usable answer.
    NoAnswer {
        error: VaultError,
        /// The request may have reached the server (and consumed the credential).
        maybe_delivered: bool,
    },
}

impl Outcome {
    /// The outcome of a transport failure.
    pub(crate) fn from_transport(te: &TransportError) -> Outcome {
        let error = match te.kind {
            TransportErrorKind::TooLarge => {
                VaultError::protocol(format!("the response was too large ({})", te.message))
            }
            TransportErrorKind::CertificatePin => VaultError::protocol("certificate pin mismatch"),
            TransportErrorKind::InsecureScheme => VaultError::protocol("plain http refused by the transport"),
            _ => VaultError::transient(format!("network: {te}")),
        };
        Outcome::NoAnswer {
            error,
            maybe_delivered: te.may_have_been_delivered(),
        }
    }
}

/// The facts of the attempt that matter to the decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptFacts {
    /// A forced refresh (the host's API rejected the token): a stale token is no answer.
    pub forced: bool,
    /// An earlier request with this credential got no answer.
    pub possibly_consumed: bool,
    /// The base access token can still be served.
    pub base_usable: bool,
}

/// What to do with the session.
#[derive(Debug)]
pub(crate) enum Settlement {
    Commit(ReceivedTokens),
    Verdict(Verdict),
    Failed {
        error: VaultError,
        /// Keep the lost-answer marker: the credential may have been consumed.
        keep_marker: bool,
        /// Serve the still-usable base token instead of the error.
        serve_stale: bool,
    },
}

/// Decide what an outcome means. Pure: the same facts and outcome always settle the same way.
pub(crate) fn settle(facts: AttemptFacts, outcome: Outcome) -> Settlement {
    let serve_stale = !facts.forced && facts.base_usable;
    match outcome {
        Outcome::Answer(Ok(received)) => Settlement::Commit(received),
        Outcome::Answer(Err(VaultError::ReauthenticationRequired { reason })) => {
            Settlement::Verdict(if facts.possibly_consumed {
                Verdict::RefreshOutcomeUnknown {
                    reason: format!(
                        "an earlier refresh with this credential got no answer (crash or lost response), \
                         and the server now refuses it ({reason})"
                    ),
                }
            } else {
                Verdict::ReauthenticationRequired { reason }
            })
        }
        Outcome::Answer(Err(error)) => Settlement::Failed {
            // A server that answered with something unreadable may still have rotated.
            keep_marker: facts.possibly_consumed || matches!(error, VaultError::Protocol { .. }),
            error,
            serve_stale,
        },
        Outcome::NoAnswer { error, maybe_delivered } => Settlement::Failed {
            keep_marker: maybe_delivered || facts.possibly_consumed,
            error,
            serve_stale,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use crate::session::RefreshExpiry;

    fn facts(forced: bool, possibly_consumed: bool, base_usable: bool) -> AttemptFacts {
        AttemptFacts {
            forced,
            possibly_consumed,
            base_usable,
        }
    }

    fn tokens() -> ReceivedTokens {
        ReceivedTokens {
            access_token: SecretString::new("a2"),
            refresh_credential: Some(SecretString::new("r2")),
            expires: None,
            refresh_expiry: RefreshExpiry::Unknown,
            token_type: None,
            scope: None,
            server_date_ms: None,
            id_token: None,
            identity: None,
        }
    }

    fn refused() -> Outcome {
        Outcome::Answer(Err(VaultError::reauth("invalid_grant")))
    }

    #[test]
    fn tokens_commit_whatever_the_facts() {
        for f in [facts(false, false, true), facts(true, true, false)] {
            assert!(matches!(
                settle(f, Outcome::Answer(Ok(tokens()))),
                Settlement::Commit(_)
            ));
        }
    }

    #[test]
    fn a_refusal_is_code_1_unless_an_earlier_answer_was_lost() {
        match settle(facts(false, false, true), refused()) {
            Settlement::Verdict(v) => {
                assert_eq!(v.error(), VaultError::reauth("invalid_grant"));
            }
            other => panic!("{other:?}"),
        }
        match settle(facts(true, true, false), refused()) {
            Settlement::Verdict(v) => {
                let e = v.error();
                assert_eq!(e.code(), crate::ErrorCode::RefreshOutcomeUnknown);
                // One prefix, not two.
                assert_eq!(e.to_string().matches("unknown").count(), 1, "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lost_answers_keep_the_marker_and_refused_connections_do_not() {
        let timeout = TransportError::new(TransportErrorKind::Timeout, "timed out");
        let refused_conn = TransportError::new(TransportErrorKind::Connect, "refused");
        match settle(facts(false, false, true), Outcome::from_transport(&timeout)) {
            Settlement::Failed {
                keep_marker,
                serve_stale,
                error,
            } => {
                assert!(keep_marker);
                assert!(serve_stale);
                assert_eq!(error.code(), crate::ErrorCode::Transient);
            }
            other => panic!("{other:?}"),
        }
        match settle(facts(false, false, true), Outcome::from_transport(&refused_conn)) {
            Settlement::Failed { keep_marker, .. } => assert!(!keep_marker),
            other => panic!("{other:?}"),
        }
        // Once possibly consumed, always kept until the attempt settles otherwise.
        match settle(facts(false, true, true), Outcome::from_transport(&refused_conn)) {
            Settlement::Failed { keep_marker, .. } => assert!(keep_marker),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forced_or_expired_attempts_never_serve_the_stale_token() {
        let e = || Outcome::Answer(Err(VaultError::transient("HTTP 503")));
        for (f, stale) in [
            (facts(false, false, true), true),
            (facts(true, false, true), false),
            (facts(false, false, false), false),
        ] {
            match settle(f, e()) {
                Settlement::Failed {
                    serve_stale,
                    keep_marker,
                    ..
                } => {
                    assert_eq!(serve_stale, stale);
                    assert!(!keep_marker, "a 503 consumed nothing");
                }
                other => panic!("{other:?}"),
            }
        }
        match settle(
            facts(false, false, true),
            Outcome::Answer(Err(VaultError::protocol("garbled 200"))),
        ) {
            Settlement::Failed { keep_marker, .. } => assert!(keep_marker, "an unreadable answer may have rotated"),
            other => panic!("{other:?}"),
        }
    }
}
