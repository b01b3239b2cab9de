//! Agent tokens: HS256 JWTs minted by the merchant's backend (or `proxy token`), with `sub`
//! (the agent), `iat`, `exp`, and optionally `session_id` (one payment only).
//!
//! A token must say when it was issued (`iat`, not in the future beyond a few seconds of
//! skew) and live at most `max_token_ttl` (`exp` − `iat`, default 1 h), so a leaked token is
//! worth an hour at most; `proxy revoke --agent` refuses an agent's tokens issued until now
//! (kept in the ledger, so every replica sharing it refuses them too).
//!
//! Event-stream tickets are JWTs of the same secret with `scope = "events"`; a ticket is not
//! an agent token and an agent token is not a ticket, so a ticket leaked from a URL buys
//! nothing but one payment's events for a few minutes, and only once: each ticket opens one
//! stream (its `jti` is remembered by this process until it expires).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use shared::api::{AgentToken, EventsTicket, Limit};
use shared::SessionId;
use signing::Secret;

use crate::error::ApiError;
use crate::extract::{Agent, AgentLimits};

/// Scope of event-stream tickets.
const EVENTS_SCOPE: &str = "events";
/// How long an event-stream ticket can be used to connect.
pub const TICKET_TTL_SECS: u64 = 300;
/// Clock skew tolerated between the merchant's backend and the proxy.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    /// Issued at, Unix seconds; required (a token without it is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// A ticket's one-time id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The most this agent may refund at once (minor units, or per currency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_max: Option<Limit>,
    /// The most this agent may refund per UTC day, per currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_daily: Option<Limit>,
    /// Shown beside the agent's name in the history (`support`, `lead`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// May approve or reject other agents' requests above `approval_above`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub can_approve: bool,
    /// A ticket's: when the agent token it was asked with expires, Unix seconds. Its stream
    /// ends then, and the widget asks for another with a token still valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// Mints and checks tokens with the agent-token secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    max_ttl_secs: i64,
    /// Tickets already used, with their expiry: refused until then, forgotten after.
    used_tickets: Arc<Mutex<HashMap<String, i64>>>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys([redacted])")
    }
}

/// The agent a token's `sub` names, as the ledger keeps and compares it: trimmed and in
/// lower case. A merchant backend passing a login through as typed (`Sam@acme.example`,
/// `sam@acme.example `) names one person, who must not approve their own request, get a
/// second daily allowance or escape `proxy revoke` by a change of case or a space.
pub fn agent_id(sub: &str) -> String {
    sub.trim().to_lowercase()
}

/// Whether `sub` can name an agent: something besides spaces, and no control character (a
/// NUL, which PostgreSQL's text cannot hold, failed a refund's commit there after SQLite had
/// taken it; an escape sequence would reach the operator's terminal through the log).
pub fn names_an_agent(sub: &str) -> bool {
    !sub.trim().is_empty() && !sub.chars().any(char::is_control)
}

pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl TokenKeys {
    /// Keys accepting tokens of at most the default `max_token_ttl_secs`.
    pub fn new(secret: &Secret) -> Self {
        let bytes = secret.expose().as_bytes();
        let default_ttl = crate::config::Settings::defaults()
            .max_token_ttl_secs()
            .expect("DEFAULTS sets max_token_ttl_secs");
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            max_ttl_secs: secs(default_ttl),
            used_tickets: Arc::default(),
        }
    }

    /// The same keys, accepting tokens that live at most `max_ttl_secs`.
    pub fn with_max_ttl(mut self, max_ttl_secs: u64) -> Self {
        self.max_ttl_secs = secs(max_ttl_secs);
        self
    }

    /// A token carrying exactly `claims` (limits, role): what a merchant's backend mints.
    pub fn mint_claims(&self, claims: &Claims) -> String {
        self.encode(claims)
    }

    fn encode(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// A token for `agent`, valid `ttl_secs`, optionally limited to one payment.
    pub fn mint(&self, agent: &str, ttl_secs: u64, session: Option<&SessionId>) -> AgentToken {
        let claims = self.claims(agent, ttl_secs, session);
        AgentToken {
            token: self.encode(&claims),
            expires_at: claims.exp,
        }
    }

    /// The claims of a token for `agent` issued now, valid `ttl_secs`, optionally limited to
    /// one payment; add limits, then [`TokenKeys::mint_claims`].
    pub fn claims(&self, agent: &str, ttl_secs: u64, session: Option<&SessionId>) -> Claims {
        let iat = now_secs();
        Claims {
            sub: agent.to_owned(),
            exp: iat.saturating_add(secs(ttl_secs)),
            iat: Some(iat),
            session_id: session.map(|s| s.to_string()),
            ..Claims::default()
        }
    }

    pub fn mint_ticket(&self, agent: &Agent, session: &SessionId) -> EventsTicket {
        let iat = now_secs();
        // A ticket is checked as tokens are, lifetime included: under a `max_token_ttl_secs`
        // shorter than a ticket's five minutes, it lives that long, or no stream would open.
        let ttl = TICKET_TTL_SECS.min(u64::try_from(self.max_ttl_secs).unwrap_or(0));
        let claims = Claims {
            sub: agent.name.clone(),
            until: Some(agent.expires_at),
            exp: iat.saturating_add(secs(ttl)),
            iat: Some(iat),
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
            session_id: Some(session.to_string()),
            scope: Some(EVENTS_SCOPE.to_owned()),
            ..Claims::default()
        };
        EventsTicket {
            ticket: self.encode(&claims),
            expires_in_secs: ttl,
        }
    }

    fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        // A token "valid from" later (`nbf`) is not valid yet.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::TokenExpired,
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                    ApiError::Unauthenticated
                }
                _ => ApiError::TokenInvalid,
            })?;
        self.check_lifetime(&claims)?;
        Ok(claims)
    }

    /// `iat` present, not ahead of our clock beyond the skew, and `exp` at most `max_ttl`
    /// after it: a token minted for a year is refused, not trusted for a year.
    fn check_lifetime(&self, claims: &Claims) -> Result<(), ApiError> {
        let iat = claims.iat.ok_or(ApiError::TokenInvalid)?;
        if iat > now_secs().saturating_add(secs(LEEWAY_SECS)) {
            return Err(ApiError::TokenInvalid);
        }
        if claims.exp.saturating_sub(iat) > self.max_ttl_secs {
            return Err(ApiError::TokenInvalid);
        }
        Ok(())
    }

    /// Whether a ticket is used for the first time; from then on it is refused until it
    /// expires. (Tickets are per process: each replica remembers the ones it saw.)
    fn first_use(&self, jti: &str, exp: i64) -> bool {
        let mut used = self.used_tickets.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_secs();
        // Forget expired ones now and then; they are refused by `exp` anyway.
        if used.len() > 1024 {
            used.retain(|_, until| *until >= now - secs(LEEWAY_SECS));
        }
        used.insert(jti.to_owned(), exp).is_none()
    }

    /// An agent token (not a ticket). The agent is named by [`agent_id`].
    pub fn verify_agent(&self, token: &str) -> Result<Agent, ApiError> {
        let claims = self.decode(token)?;
        // A role is written beside the agent's name in the ledger, and read out in history.
        let role_ok = claims
            .role
            .as_deref()
            .is_none_or(|r| !r.chars().any(char::is_control));
        if claims.scope.is_some() || !names_an_agent(&claims.sub) || !role_ok {
            return Err(ApiError::TokenInvalid);
        }
        // A limit on something that is not a currency would bind nothing: the currency the
        // merchant's backend meant would be unlimited. Refused, and said in the log.
        let limits = [&claims.refund_max, &claims.refund_daily];
        if let Some(code) = limits
            .into_iter()
            .flatten()
            .find_map(Limit::bad_currency_key)
        {
            tracing::warn!(agent = %claims.sub, currency = ?code,
                "token refused: a limit names something that is not a currency");
            return Err(ApiError::TokenInvalid);
        }
        Ok(Agent {
            session_id: only_payment(&claims)?,
            issued_at: claims.iat.unwrap_or_default(),
            expires_at: claims.exp,
            limits: AgentLimits {
                per_refund: claims.refund_max,
                daily: claims.refund_daily,
            },
            role: claims.role,
            can_approve: claims.can_approve,
            name: agent_id(&claims.sub),
        })
    }

    /// An event-stream ticket for exactly this payment, not yet used up: a stream refused
    /// for what the request says besides (its `Last-Event-ID`, the agent's stream limit) may
    /// be asked again with it. [`TokenKeys::use_ticket`] uses it.
    pub fn check_ticket(&self, ticket: &str, session: &SessionId) -> Result<Ticket, ApiError> {
        let claims = self.decode(ticket)?;
        if claims.scope.as_deref() != Some(EVENTS_SCOPE) {
            return Err(ApiError::TokenInvalid);
        }
        // The agent's token it was taken with has expired: a stream would outlive it (the
        // ticket itself lives a few minutes). The widget renews its token and asks again.
        if claims.until.is_some_and(|until| until < now_secs()) {
            return Err(ApiError::TokenExpired);
        }
        let agent = Agent {
            session_id: only_payment(&claims)?,
            name: agent_id(&claims.sub),
            issued_at: claims.iat.unwrap_or_default(),
            expires_at: claims.exp,
            limits: AgentLimits::default(),
            role: None,
            can_approve: false,
        };
        agent.authorize(session)?;
        let jti = claims.jti.ok_or(ApiError::TokenInvalid)?;
        Ok(Ticket {
            id: jti,
            expires_at: claims.exp,
            until: claims.until,
            agent,
        })
    }

    /// Uses `ticket` up in this process: `token_invalid` if it was used before (replicas
    /// also ask the ledger: [`Ticket::id`]).
    pub fn use_ticket(&self, ticket: &Ticket) -> Result<(), ApiError> {
        if self.first_use(&ticket.id, ticket.expires_at) {
            Ok(())
        } else {
            Err(ApiError::TokenInvalid)
        }
    }
}

/// A verified event-stream ticket.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// Its one-time id (`jti`).
    pub id: String,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
    /// When its stream ends: the agent token it was asked with expires then.
    pub until: Option<i64>,
    pub agent: Agent,
}

/// The payment a token is limited to: a `session_id` claim that is no session id is a
/// broken token, not an unlimited one.
fn only_payment(claims: &Claims) -> Result<Option<SessionId>, ApiError> {
    claims
        .session_id
        .as_deref()
        .map(|id| SessionId::parse(id).map_err(|_| ApiError::TokenInvalid))
        .transpose()
}

/// Seconds as the claims' `i64`, saturating (no lifetime comes near the limit).
fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Parses a lifetime: `15m`, `30s`, `2h`, `1d`, `1h 30m` (humantime's forms) or a plain
/// number of seconds; whole seconds, greater than zero.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let secs = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>()
            .map_err(|_| format!("`{text}` is too long a duration"))?
    } else {
        humantime::parse_duration(text)
            .map_err(|e| format!("`{text}` is not a duration like 15m: {e}"))?
            .as_secs()
    };
    if secs == 0 {
        return Err(format!("`{text}` must be at least a second"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::{parse_ttl, TokenKeys};
    use shared::SessionId;
    use signing::Secret;

    /// A ticket carries when the token it was asked with expires: its stream ends then.
    #[test]
    fn a_ticket_carries_its_tokens_expiry() {
        let keys = TokenKeys::new(&Secret::new("a-test-secret-long-enough-for-hs256-000000"));
        let session = SessionId::parse("ps_ticket").unwrap();
        let token = keys.mint("alice", 600, None);
        let agent = keys.verify_agent(&token.token).unwrap();
        assert_eq!(agent.expires_at, token.expires_at);
        let ticket = keys.mint_ticket(&agent, &session);
        let verified = keys.check_ticket(&ticket.ticket, &session).unwrap();
        keys.use_ticket(&verified).unwrap();
        assert!(
            keys.use_ticket(&verified).is_err(),
            "a ticket opens one stream"
        );
        assert_eq!(verified.until, Some(token.expires_at));
        assert!(
            verified.expires_at < token.expires_at,
            "the ticket itself lives minutes"
        );
    }

    /// Under a `max_token_ttl_secs` shorter than a ticket's usual five minutes, tickets live
    /// that long: they pass the lifetime check every token passes, and streams still open.
    #[test]
    fn a_ticket_lives_no_longer_than_tokens_may() {
        let keys = TokenKeys::new(&Secret::new("a-test-secret-long-enough-for-hs256-000000"))
            .with_max_ttl(120);
        let session = SessionId::parse("ps_ticket").unwrap();
        let token = keys.mint("alice", 120, None);
        let agent = keys.verify_agent(&token.token).unwrap();
        let ticket = keys.mint_ticket(&agent, &session);
        assert_eq!(ticket.expires_in_secs, 120);
        keys.check_ticket(&ticket.ticket, &session).unwrap();
    }

    #[test]
    fn lifetimes_read_the_way_people_write_them() {
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("30s"), Ok(30));
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert_eq!(parse_ttl("1d"), Ok(86_400));
        assert_eq!(parse_ttl("1h 30m"), Ok(5400));
        assert_eq!(parse_ttl(" 600 "), Ok(600));
        for bad in ["", "0", "0s", "500ms", "soon", "15 minutes ago", "-5m"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
