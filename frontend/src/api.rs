//! The widget's only network module: every call to the proxy, and its live event stream.
//!
//! Calls carry `Authorization: Bearer <token>`; an answer of `token_expired` asks the host for a
//! new token ([`TokenSource::renewed`]) and repeats the same call, so a refund retried this way
//! keeps its idempotency key.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use shared::api::{
    ApprovalDecision, ErrorBody, ErrorCode, EventsTicket, PaymentView, ProviderError, RefundEvent,
    RefundSubmission, RefundView,
};
use shared::{AttemptId, Backoff, Locale, Note, SessionId};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{EventSource, Headers, MessageEvent, Request, RequestInit, RequestMode, Response};

use crate::dom;
use crate::i18n;
use crate::token::TokenSource;

/// How many times one call asks the host for a new token before giving up.
const TOKEN_RENEWALS_PER_CALL: usize = 3;

/// Why the widget's call to the proxy failed (the proxy's own error type is `proxy::ApiError`;
/// Smart Glocal's is `shared::smart_glocal::SmartGlocalError`).
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The proxy answered with its error body.
    Proxy { status: u16, body: ErrorBody },
    /// No answer: the network, CORS, or the proxy is down.
    Network,
    /// An answer that is neither the expected type nor an error body.
    BadResponse { status: u16 },
}

impl CallError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Proxy { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// Smart Glocal's own refusal, when the proxy passed one on.
    pub fn provider(&self) -> Option<&ProviderError> {
        match self {
            CallError::Proxy { body, .. } => body.provider.as_ref(),
            _ => None,
        }
    }

    /// What the agent reads: with a limit's refusal, what they may still refund.
    pub fn message(&self, locale: Locale) -> String {
        match self {
            CallError::Proxy { body, .. } => {
                let message = i18n::error_message(body.code, locale);
                match (body.allowance, &body.provider) {
                    (Some(allowance), _) => format!(
                        "{message}{}{}.",
                        i18n::tr(locale, " You can refund up to ", " Вы можете вернуть до "),
                        allowance.format(locale)
                    ),
                    // Smart Glocal's own words: a refused look-up (a wrong key or project)
                    // says what it was refused for.
                    (None, Some(provider)) => format!(
                        "{message} Smart Glocal: {}",
                        if provider.description.is_empty() {
                            &provider.code
                        } else {
                            &provider.description
                        }
                    ),
                    (None, None) => message.to_owned(),
                }
            }
            CallError::Network => i18n::network_error(locale).to_owned(),
            CallError::BadResponse { .. } => {
                i18n::error_message(ErrorCode::Internal, locale).to_owned()
            }
        }
    }
}

/// How the proxy took a refund submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// 201: a new refund.
    Created,
    /// 200: the same intent was submitted before; this is its refund.
    Replayed,
    /// 202: sent, but Smart Glocal's answer was lost: awaiting confirmation. (Or, with the
    /// refund `awaiting_approval`, recorded and not sent.)
    OutcomeUnknown,
}

/// One widget's connection to the proxy, for one payment.
pub struct Client {
    proxy: String,
    session: SessionId,
    token: Rc<TokenSource>,
}

impl Client {
    pub fn new(proxy: &str, session: SessionId, token: Rc<TokenSource>) -> Self {
        Self {
            proxy: proxy.trim_end_matches('/').to_owned(),
            session,
            token,
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/api/payments/{}{}", self.proxy, self.session, tail)
    }

    /// `GET /api/payments/{id}`.
    pub async fn payment(&self) -> Result<PaymentView, CallError> {
        let (status, text) = self.call("", "GET", None).await?;
        decode(status, &text)
    }

    /// `POST /api/payments/{id}/refunds`.
    pub async fn refund(
        &self,
        submission: &RefundSubmission,
    ) -> Result<(RefundView, Submitted), CallError> {
        let body = to_json(submission).ok_or(CallError::BadResponse { status: 0 })?;
        let (status, text) = self.call("/refunds", "POST", Some(body)).await?;
        let how = match status {
            200 => Submitted::Replayed,
            202 => Submitted::OutcomeUnknown,
            _ => Submitted::Created,
        };
        Ok((decode(status, &text)?, how))
    }

    /// `POST /api/payments/{id}/refunds/{attempt_id}/approve` (or `/reject`): a second
    /// agent's decision; approving answers as the refund's own submission would.
    pub async fn decide(
        &self,
        attempt: &AttemptId,
        approve: bool,
        note: Option<Note>,
    ) -> Result<(RefundView, Submitted), CallError> {
        let body =
            to_json(&ApprovalDecision { note }).ok_or(CallError::BadResponse { status: 0 })?;
        let verb = if approve { "approve" } else { "reject" };
        let (status, text) = self
            .call(&format!("/refunds/{attempt}/{verb}"), "POST", Some(body))
            .await?;
        let how = match status {
            202 => Submitted::OutcomeUnknown,
            _ => Submitted::Created,
        };
        Ok((decode(status, &text)?, how))
    }

    /// `POST /api/payments/{id}/events/ticket`.
    pub async fn events_ticket(&self) -> Result<EventsTicket, CallError> {
        let (status, text) = self.call("/events/ticket", "POST", None).await?;
        decode(status, &text)
    }

    /// The stream's URL, replaying every event after `last_seq` (the look-up's, then the
    /// last one received): what came while no stream was open is not missed.
    fn events_url(&self, ticket: &str, last_seq: i64) -> String {
        let ticket = String::from(js_sys::encode_uri_component(ticket));
        self.url(&format!("/events?ticket={ticket}&last_event_id={last_seq}"))
    }

    /// Sends one request with the current token; on `token_expired`, waits for the host's new
    /// token and sends it again. Answers a 2xx status and its body, or the proxy's error, which
    /// is also announced to the host page as `sg-refund:error`.
    ///
    /// Free of the answer's type on purpose: it is compiled once, and only [`decode`] is
    /// compiled per type.
    async fn call(
        &self,
        tail: &str,
        method: &str,
        body: Option<String>,
    ) -> Result<(u16, String), CallError> {
        let answer = self.call_renewing(tail, method, body).await;
        if let Err(error) = &answer {
            let (code, status) = match error {
                CallError::Proxy { status, body } => (body.code.name(), *status),
                CallError::Network => ("network", 0),
                CallError::BadResponse { status } => ("bad_response", *status),
            };
            dom::emit(
                self.token.element(),
                dom::events::ERROR,
                &[
                    ("session", JsValue::from_str(self.session.as_str())),
                    ("code", JsValue::from_str(code)),
                    ("status", JsValue::from_f64(f64::from(status))),
                ],
            );
        }
        answer
    }

    /// The session this client works on.
    pub fn session(&self) -> String {
        self.session.to_string()
    }

    /// The host element, where the widget's events are dispatched.
    pub fn host(&self) -> &web_sys::Element {
        self.token.element()
    }

    async fn call_renewing(
        &self,
        tail: &str,
        method: &str,
        body: Option<String>,
    ) -> Result<(u16, String), CallError> {
        let url = self.url(tail);
        let mut renewals = 0;
        loop {
            let (status, text) = send(&url, method, self.token.current(), body.clone()).await?;
            if (200..300).contains(&status) {
                return Ok((status, text));
            }
            let error = match from_json::<ErrorBody>(&text) {
                Some(body) => CallError::Proxy { status, body },
                None => CallError::BadResponse { status },
            };
            if error.code() == Some(ErrorCode::TokenExpired) && renewals < TOKEN_RENEWALS_PER_CALL {
                renewals += 1;
                self.token.renewed().await;
            } else {
                return Err(error);
            }
        }
    }
}

/// The response to the same `GET` with the same token, if the embed script sent it while the
/// widget's code loaded (`takePrefetched`, each answer taken once); else `None`.
fn prefetched(url: &str, token: &str) -> Option<js_sys::Promise> {
    let window = web_sys::window()?;
    let api = js_sys::Reflect::get(&window, &"sgRefund".into()).ok()?;
    let take = js_sys::Reflect::get(&api, &"takePrefetched".into()).ok()?;
    let take: js_sys::Function = take.dyn_into().ok()?;
    take.call2(&api, &url.into(), &token.into())
        .ok()?
        .dyn_into()
        .ok()
}

/// One request and its answer's status and text; any failure to get an answer is `Network`.
async fn send(
    url: &str,
    method: &str,
    token: String,
    body: Option<String>,
) -> Result<(u16, String), CallError> {
    let headers = Headers::new().map_err(|_| CallError::Network)?;
    let _ = headers.set("Accept", "application/json");
    let _ = headers.set("Authorization", &format!("Bearer {token}"));
    let init = RequestInit::new();
    init.set_method(method);
    init.set_mode(RequestMode::Cors);
    if let Some(body) = body {
        let _ = headers.set("Content-Type", "application/json");
        init.set_body(&JsValue::from_str(&body));
    }
    init.set_headers(&headers);
    let request = Request::new_with_str_and_init(url, &init).map_err(|_| CallError::Network)?;
    let window = web_sys::window().ok_or(CallError::Network)?;
    let pending = match method {
        "GET" => prefetched(url, &token),
        _ => None,
    };
    let pending = pending.unwrap_or_else(|| window.fetch_with_request(&request));
    let response: Response = JsFuture::from(answered_within(pending, ANSWER_WAIT_MS))
        .await
        .map_err(|_| CallError::Network)?
        .unchecked_into();
    let text_promise = response.text().map_err(|_| CallError::Network)?;
    let text = JsFuture::from(answered_within(text_promise, ANSWER_WAIT_MS))
        .await
        .map_err(|_| CallError::Network)?
        .as_string()
        .unwrap_or_default();
    Ok((response.status(), text))
}

/// How long a request waits for its answer, and then for the answer's body: longer than the
/// proxy's worst case with its defaults (25 s for a payment's lock in the proxy, 2 s for a
/// connection and 25 s for another replica's hold on PostgreSQL, then two calls to Smart
/// Glocal of 10 s each). A connection that died without a word (a dropped NAT entry, Wi-Fi
/// changed) would otherwise leave "Refunding…" on screen for ever; after it, the call is a
/// network failure, which keeps a refund's idempotency key for the agent's next try.
pub const ANSWER_WAIT_MS: i32 = 90_000;

/// `pending`, or a rejection once `ms` have passed without it settling.
pub fn answered_within(pending: js_sys::Promise, ms: i32) -> js_sys::Promise {
    let deadline = js_sys::Promise::new(&mut |_, reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&reject, ms);
        }
    });
    js_sys::Promise::race(&js_sys::Array::of2(&pending, &deadline))
}

/// A 2xx answer's body as `T`.
fn decode<T: DeserializeOwned>(status: u16, text: &str) -> Result<T, CallError> {
    from_json(text).ok_or(CallError::BadResponse { status })
}

/// JSON text as `T`, parsed by the browser (`JSON.parse`) and read from the parsed value
/// (serde-wasm-bindgen): no JSON parser of our own in the wasm.
fn from_json<T: DeserializeOwned>(text: &str) -> Option<T> {
    let value = js_sys::JSON::parse(text).ok()?;
    serde_wasm_bindgen::from_value(value).ok()
}

/// `value` as JSON text, written by the browser (`JSON.stringify`).
fn to_json<T: serde::Serialize>(value: &T) -> Option<String> {
    let value = value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .ok()?;
    js_sys::JSON::stringify(&value).ok()?.as_string()
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// The live stream of refund changes for one payment, reconnecting by itself.
///
/// `EventSource` retries on its own after a dropped connection, but with the same URL: once the
/// ticket has expired that retry is refused and the source closes. Then a fresh ticket is
/// fetched (renewing the token if needed) and a new source opened, with a growing pause.
///
/// A page holds at most [`STREAMS_PER_PAGE`] streams. A widget beyond them, or whose stream is
/// down, is asked every [`POLL_MS`] whether to re-read its payment, until it has a stream.
pub struct EventStream {
    state: Rc<RefCell<StreamState>>,
}

struct StreamState {
    closed: bool,
    /// Whether it holds one of the page's stream slots.
    slot: bool,
    source: Option<EventSource>,
    /// Kept alive as long as the source uses them.
    listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    failures: u32,
    opened_before: bool,
    /// The newest event's `seq` the widget has: the next connection starts after it.
    last_seq: i64,
}

impl StreamState {
    /// Gives its slot back, if it holds one (once, whichever path ends the stream first).
    fn release_slot(&mut self) {
        if std::mem::take(&mut self.slot) {
            OPEN_STREAMS.set(OPEN_STREAMS.get().saturating_sub(1));
        }
    }
}

impl EventStream {
    /// Starts listening. `on_event` gets each refund change; `on_reconnect(false)` is called
    /// when a new connection opens after a lost one (or after waiting for a slot), so the
    /// caller can re-read what it missed; `on_reconnect(true)` about every [`POLL_MS`] while
    /// there is no stream, for the caller to decide whether to re-read.
    /// `last_seq` is the look-up's `last_event_id`: events after it are replayed first.
    pub fn start(
        client: Rc<Client>,
        last_seq: i64,
        on_event: Rc<dyn Fn(RefundEvent)>,
        on_reconnect: Rc<dyn Fn(bool)>,
    ) -> Self {
        let state = Rc::new(RefCell::new(StreamState {
            closed: false,
            slot: false,
            source: None,
            listeners: Vec::new(),
            failures: 0,
            opened_before: false,
            last_seq,
        }));
        connect(client, state.clone(), on_event, on_reconnect);
        Self { state }
    }

    pub fn close(&self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        if let Some(source) = state.source.take() {
            source.close();
        }
        state.listeners.clear();
        state.release_slot();
    }
}

/// How many event streams one page keeps open.
///
/// Over HTTP/1.1 a browser opens at most six connections to a host, and an event stream holds
/// one for as long as it is open. A page with more widgets than that would starve: the next
/// widget's stream, and then every call from the page to the proxy (a refund's submission
/// among them), would wait for a connection that never frees. Four leaves two for calls. (The
/// count is page-wide, not per proxy: pages embed one proxy.)
pub const STREAMS_PER_PAGE: usize = 4;

/// How often a widget without a stream is asked whether to re-read its payment
/// (`on_reconnect(true)`), and looks for a free slot.
pub const POLL_MS: i32 = 5_000;

thread_local! {
    /// Streams open on this page: every widget on a page shares this wasm instance.
    static OPEN_STREAMS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Takes one of the page's stream slots, if one is free.
fn take_stream_slot() -> bool {
    let open = OPEN_STREAMS.get();
    open < STREAMS_PER_PAGE && {
        OPEN_STREAMS.set(open + 1);
        true
    }
}

fn connect(
    client: Rc<Client>,
    state: Rc<RefCell<StreamState>>,
    on_event: Rc<dyn Fn(RefundEvent)>,
    on_reconnect: Rc<dyn Fn(bool)>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            if state.borrow().closed {
                return;
            }
            let failures = state.borrow().failures;
            if failures > 0 {
                // No stream while it is down: the caller is asked as often as a widget without
                // one is.
                let mut pause = backoff_ms(failures);
                while pause > 0 {
                    let step = pause.min(POLL_MS);
                    sleep(step).await;
                    if state.borrow().closed {
                        return;
                    }
                    pause -= step;
                    on_reconnect(true);
                }
            }
            if !state.borrow().slot {
                if take_stream_slot() {
                    state.borrow_mut().slot = true;
                } else {
                    // No stream for now: stay current by re-reading the payment, and re-read
                    // once more when a stream does open (what came in between). The wait for
                    // a slot paces it; no backoff on top.
                    sleep(POLL_MS).await;
                    if state.borrow().closed {
                        return;
                    }
                    {
                        let mut state = state.borrow_mut();
                        state.opened_before = true;
                        state.failures = 0;
                    }
                    on_reconnect(true);
                    continue;
                }
            }
            let source = match client.events_ticket().await {
                // Closed meanwhile: no request for a stream nobody will read.
                _ if state.borrow().closed => return,
                Ok(ticket) => {
                    let url = client.events_url(&ticket.ticket, state.borrow().last_seq);
                    EventSource::new(&url).ok()
                }
                Err(_) => None,
            };
            let Some(source) = source else {
                // Its slot goes back while it waits to try again: another widget may use it.
                let mut state = state.borrow_mut();
                state.failures += 1;
                state.opened_before = true;
                state.release_slot();
                continue;
            };
            open(source, &client, &state, &on_event, &on_reconnect);
            return;
        }
    });
}

fn open(
    source: EventSource,
    client: &Rc<Client>,
    state: &Rc<RefCell<StreamState>>,
    on_event: &Rc<dyn Fn(RefundEvent)>,
    on_reconnect: &Rc<dyn Fn(bool)>,
) {
    let refund = {
        let on_event = on_event.clone();
        let state = state.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let Some(message) = event.dyn_ref::<MessageEvent>() else {
                return;
            };
            let Some(data) = message.data().as_string() else {
                return;
            };
            if let Some(event) = from_json::<RefundEvent>(&data) {
                {
                    let mut state = state.borrow_mut();
                    state.last_seq = state.last_seq.max(event.seq);
                }
                on_event(event);
            }
        })
    };
    let opened = {
        let state = state.clone();
        let on_reconnect = on_reconnect.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            let reconnected = {
                let mut state = state.borrow_mut();
                state.failures = 0;
                std::mem::replace(&mut state.opened_before, true)
            };
            if reconnected {
                on_reconnect(false);
            }
        })
    };
    let errored = {
        let state = state.clone();
        let client = client.clone();
        let on_event = on_event.clone();
        let on_reconnect = on_reconnect.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            let closed_for_good = {
                let state = state.borrow();
                state
                    .source
                    .as_ref()
                    .is_some_and(|s| s.ready_state() == EventSource::CLOSED)
            };
            if closed_for_good {
                {
                    let mut state = state.borrow_mut();
                    state.source = None;
                    state.failures += 1;
                    // Whether or not it ever opened, what came meanwhile is re-read on the next.
                    state.opened_before = true;
                    // A slot is held only while a stream is open or opening.
                    state.release_slot();
                    // The listeners are dropped by the next `open`, not here: this closure
                    // is one of them and is still running.
                }
                connect(
                    client.clone(),
                    state.clone(),
                    on_event.clone(),
                    on_reconnect.clone(),
                );
            }
        })
    };
    let _ = source.add_event_listener_with_callback("refund", refund.as_ref().unchecked_ref());
    let _ = source.add_event_listener_with_callback("open", opened.as_ref().unchecked_ref());
    let _ = source.add_event_listener_with_callback("error", errored.as_ref().unchecked_ref());
    let mut state = state.borrow_mut();
    if state.closed {
        source.close();
        return;
    }
    state.source = Some(source);
    state.listeners = vec![refund, opened, errored];
}

/// 1 s, 2 s, 4 s … up to 30 s between attempts.
const RECONNECT: Backoff = Backoff::doubling(Duration::from_secs(1), Duration::from_secs(30));

/// The pause after `failures` (at least 1) failed attempts in a row, for [`sleep`].
fn backoff_ms(failures: u32) -> i32 {
    let wait = RECONNECT.delay(failures.saturating_sub(1));
    i32::try_from(wait.as_millis()).unwrap_or(i32::MAX)
}
