//! SaslHandshake (v1) and SaslAuthenticate (v0–v2): a connection's login, served by its reader
//! before it reads the next frame, so no request is judged against a half-finished login.
//!
//! After a SaslHandshake v0, Kafka expects raw SASL tokens without SaslAuthenticate framing; that
//! form is not served (such a token is not a valid request and closes the connection). v0 is
//! still advertised because librdkafka up to 2.x refuses SASL unless ApiVersions lists it; clients
//! since Kafka 1.0 send v1 and SaslAuthenticate.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use tracing::warn;

use super::{code, error_message, str_bytes, RequestContext, RequestError, Response};
use crate::sasl::{AuthStep, HandshakeError, SaslConfig, Session};

/// A SASL request's answer, and whether the connection stays open after it.
pub struct SaslAnswer {
    pub response: Response,
    pub keep_open: bool,
}

/// SaslHandshake. `config` is `None` on a listener without SASL (Kafka answers
/// ILLEGAL_SASL_STATE there).
pub fn handshake(
    config: Option<&SaslConfig>,
    session: &mut Session,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<SaslAnswer, RequestError> {
    let handshake: SaslHandshakeRequest = request.decode(body)?;
    let Some(config) = config else {
        let response =
            SaslHandshakeResponse::default().with_error_code(code(ResponseError::IllegalSaslState));
        return Ok(SaslAnswer {
            response: request.frame(&response),
            keep_open: true,
        });
    };
    let result = session.handshake(config, &handshake.mechanism, Instant::now());
    let error = match result {
        Ok(()) => 0,
        Err(HandshakeError::NoReauthentication) => {
            // Kafka's KafkaApis answer to a handshake after a login: no mechanisms, still open.
            let response = SaslHandshakeResponse::default()
                .with_error_code(code(ResponseError::IllegalSaslState));
            return Ok(SaslAnswer {
                response: request.frame(&response),
                keep_open: true,
            });
        }
        Err(HandshakeError::IllegalState) => code(ResponseError::IllegalSaslState),
        Err(HandshakeError::Unsupported) => code(ResponseError::UnsupportedSaslMechanism),
    };
    let mechanisms = config
        .mechanisms
        .iter()
        .map(|m| str_bytes(m.name()))
        .collect();
    let response = SaslHandshakeResponse::default()
        .with_error_code(error)
        .with_mechanisms(mechanisms);
    Ok(SaslAnswer {
        response: request.frame(&response),
        // As Kafka: a failed handshake closes the connection once the answer is sent.
        keep_open: error == 0,
    })
}

/// SaslAuthenticate: one step of the exchange. A failure is answered (after
/// [`crate::sasl::FAILED_AUTHENTICATION_DELAY`], which the caller waits), logged with the
/// client's address, and closes the connection once the client has closed its end or the same
/// delay has passed again. A PLAIN password is checked on compio's blocking
/// pool: its PBKDF2 would otherwise hold the shard (every connection of the core) for each attempt
/// an unauthenticated client makes.
pub async fn authenticate(
    config: Option<&SaslConfig>,
    session: &mut Session,
    request: RequestContext,
    body: &mut Bytes,
    peer: SocketAddr,
    now_ms: u64,
) -> Result<SaslAnswer, RequestError> {
    let authenticate: SaslAuthenticateRequest = request.decode(body)?;
    let Some(config) = config else {
        let response = SaslAuthenticateResponse::default()
            .with_error_code(code(ResponseError::IllegalSaslState));
        return Ok(SaslAnswer {
            response: request.frame(&response),
            keep_open: false,
        });
    };
    if session.logged_in_between_exchanges(Instant::now()) {
        // As Kafka's KafkaApis: a SaslAuthenticate after a login without a handshake before it
        // is refused, and the connection keeps its principal.
        let response = SaslAuthenticateResponse::default()
            .with_error_code(code(ResponseError::IllegalSaslState))
            .with_error_message(Some(error_message(
                "SaslAuthenticate request received after successful authentication",
            )));
        return Ok(SaslAnswer {
            response: request.frame(&response),
            keep_open: true,
        });
    }
    if authenticate.auth_bytes.len() > crate::sasl::scram::MESSAGE_BYTES_MAX {
        return Ok(failure(request, "message too long"));
    }
    let mut step = session.authenticate(config, &authenticate.auth_bytes, Instant::now());
    if let Ok(AuthStep::CheckPlain(check)) = step {
        let verified = compio::runtime::spawn_blocking(move || {
            let matched = check.verify();
            (check, matched)
        })
        .await;
        step = match verified {
            Ok((check, matched)) => session.finish_plain(config, check, matched, Instant::now()),
            // A panic in the check is a failed login, not a dead connection task.
            Err(_) => Err(crate::sasl::AuthFailure::BadPassword),
        };
    }
    match step {
        Ok(AuthStep::CheckPlain(_)) => unreachable!("a PLAIN check was finished above"),
        Ok(AuthStep::Continue(bytes)) => Ok(SaslAnswer {
            response: request
                .frame(&SaslAuthenticateResponse::default().with_auth_bytes(bytes.into())),
            keep_open: true,
        }),
        Ok(AuthStep::Done { bytes, lifetime_ms }) => {
            let mut response = SaslAuthenticateResponse::default().with_auth_bytes(bytes.into());
            if request.version >= 1 {
                response = response.with_session_lifetime_ms(lifetime_ms);
            }
            Ok(SaslAnswer {
                response: request.frame(&response),
                keep_open: true,
            })
        }
        Err(reason) => {
            if let Some(suppressed) = config.should_log_failure(now_ms) {
                warn!(%peer, %reason, suppressed, "failed SASL login (logged at most 10 a second; suppressed: since the last line)");
            }
            Ok(failure(
                request,
                "Authentication failed: invalid credentials",
            ))
        }
    }
}

fn failure(request: RequestContext, message: &str) -> SaslAnswer {
    let response = SaslAuthenticateResponse::default()
        .with_error_code(code(ResponseError::SaslAuthenticationFailed))
        .with_error_message(Some(error_message(message)));
    SaslAnswer {
        response: request.frame(&response),
        keep_open: false,
    }
}
