//! The `/_sandbox/…` control API's bodies, shared by the HTTP routes and the typed helpers of
//! [`crate::Sandbox`], so tests of other crates and the demo page read the same JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::smart_glocal::{AmountDetails, Session};
use shared::{Money, SessionId};

/// `GET /_sandbox/sessions/{id}` (and each item of `GET /_sandbox/sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSession {
    /// The session exactly as `session/status` returns it.
    pub session: Session,
    /// The project it belongs to (`X-PARTNER-PROJECT`).
    pub project: String,
    /// Refunds this sandbox took through `session/refund` since it started, including those
    /// whose answer a fault lost. Seeded refunds and chargebacks are not counted.
    pub refunds_received: usize,
    /// Whether the session's project accepts partial refunds.
    pub partial_refunds_allowed: bool,
}

/// `POST /_sandbox/sessions`: a new succeeded card payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatePayment {
    /// Default `demo-project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Default: a fresh `ps_…` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    pub amount_details: AmountDetails,
    /// Default `visa`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_brand: Option<String>,
    /// Default `4242`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_last4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl CreatePayment {
    /// A payment of `money` in `demo-project`, with a fresh id and a visa card.
    pub fn new(money: Money) -> Self {
        Self {
            project: None,
            session_id: None,
            amount_details: money.into(),
            card_brand: None,
            card_last4: None,
            customer_reference: None,
            metadata: None,
        }
    }

    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    pub fn session_id(mut self, id: SessionId) -> Self {
        self.session_id = Some(id);
        self
    }
}

/// What goes wrong on the next calls. Transport faults (`delay`, `http_500`, `timeout`,
/// `garbage`) hit either Smart Glocal route unless a route is named; the others concern a
/// refund and hit only `session/refund`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Wait `ms` before handling the call (then handle it normally).
    Delay { ms: u64 },
    /// Answer HTTP 500; the request is NOT applied.
    #[serde(rename = "http_500")]
    Http500,
    /// Handle the request, then keep the answer back for a long time: a refund is taken (or
    /// refused by the rules) but the caller never learns it.
    Timeout,
    /// Handle the request, then answer 200 with a body cut off mid-JSON (a refusal's too).
    Garbage,
    /// Refuse the refund with `refund_declined`; nothing is applied.
    Decline,
    /// Take the refund (`in_progress`), then finish it `failed`.
    FailRefund,
    /// Send the refund's final webhook twice, byte for byte.
    DuplicateWebhook,
    /// Send the final webhook, then a stale one still showing the refund `in_progress`.
    OutOfOrderWebhooks,
    /// Finish the refund but send no webhook: only `session/status` shows the outcome.
    NoWebhook,
}

impl Fault {
    /// Whether the fault concerns a refund (rather than any call).
    pub fn refund_only(&self) -> bool {
        !matches!(
            self,
            Fault::Delay { .. } | Fault::Http500 | Fault::Timeout | Fault::Garbage
        )
    }
}

/// Which Smart Glocal route a fault waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultRoute {
    Refund,
    Status,
}

/// `POST /_sandbox/faults`: `{"fault":"delay","ms":500,"count":2,"route":"refund"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRequest {
    #[serde(flatten)]
    pub fault: Fault,
    /// How many calls it hits. Default 1.
    #[serde(default = "one")]
    pub count: u32,
    /// Default: any route the fault applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<FaultRoute>,
}

fn one() -> u32 {
    1
}

impl FaultRequest {
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            count: 1,
            route: None,
        }
    }

    /// Hit the next `count` calls.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Hit only calls of `route`.
    pub fn on(mut self, route: FaultRoute) -> Self {
        self.route = Some(route);
        self
    }
}

impl From<Fault> for FaultRequest {
    fn from(fault: Fault) -> Self {
        Self::new(fault)
    }
}

/// `POST /_sandbox/sessions/{id}/chargeback`: at most the payment less earlier chargebacks
/// (refunds do not lower it: a refunded payment can still be disputed). No amount = what
/// remains refundable, or the payment once it is refunded in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChargebackRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
}

/// `POST /_sandbox/webhook-url`: where webhooks go from now on; `null` sends none.
/// With a `project`, sets only that project's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUrlRequest {
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}
