//! Smart Glocal's wire format: `session/status` and `session/refund` requests, the response
//! envelope, the session object and its webhooks.
//!
//! Payloads may gain fields at any time, so nothing here denies unknown fields, and every
//! status keeps values this version has not seen (see `string_enum`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::ids::{RefundId, SessionId};
use crate::money::{Currency, Money};
use crate::string_enum::string_enum;
use crate::timestamp::Timestamp;

/// A field Smart Glocal may leave out or send as `null`: either reads as its default (an
/// empty text or list, `false`). serde's `default` alone covers only the field left out, and
/// one `null` would make the whole answer or webhook unreadable.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Header carrying the merchant's project id on every request.
pub const HEADER_PROJECT: &str = "X-PARTNER-PROJECT";
/// Header carrying the signature of the exact body bytes, on requests and on webhooks.
pub const HEADER_SIGN: &str = "X-PARTNER-SIGN";
/// Path of the refund call, below the base URL.
pub const PATH_REFUND: &str = "/api/v1/session/refund";
/// Path of the status call, below the base URL.
pub const PATH_STATUS: &str = "/api/v1/session/status";

/// `POST /api/v1/session/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRequest {
    pub session_id: SessionId,
}

/// `POST /api/v1/session/refund`. No `amount_details` means "refund in full".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub session_id: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_details: Option<AmountDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// Every answer: `{"status":"ok","session":{…}}` or `{"status":"error","error":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Response {
    Ok { session: Session },
    Error { error: SmartGlocalError },
}

/// An error Smart Glocal reports. Codes are not published, so they stay strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartGlocalError {
    pub code: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
}

string_enum!(
    /// `created`, `in_progress`, `accepted`, `cancelled`, `error` (not final, per the docs).
    SessionStatus {
        Created => "created",
        InProgress => "in_progress",
        Accepted => "accepted",
        Cancelled => "cancelled",
        Error => "error",
    }
);

string_enum!(
    /// `succeeded`, `in_progress`, `pending`, `failed`.
    PaymentStatus {
        Succeeded => "succeeded",
        InProgress => "in_progress",
        Pending => "pending",
        Failed => "failed",
    }
);

string_enum!(
    /// Seen: `in_progress`, then `accepted`. The list is not published.
    RefundStatus {
        InProgress => "in_progress",
        Accepted => "accepted",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl RefundStatus {
    /// Whether the refund has reached an end: it will change no more.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Accepted | Self::Failed | Self::Cancelled)
    }

    /// Whether the money is (or may yet be) gone: counts against what is refundable.
    pub fn holds_money(&self) -> bool {
        !matches!(self, Self::Failed | Self::Cancelled)
    }
}

string_enum!(
    /// The webhook's `type`.
    WebhookType {
        PaymentRefunded => "payment_refunded",
        PaymentFinished => "payment_finished",
        ReadyToConfirm => "ready_to_confirm",
        ActionRequired => "action_required",
    }
);

/// `{"amount": 1000, "currency": "usd"}`, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountDetails {
    pub amount: u64,
    pub currency: Currency,
}

impl From<Money> for AmountDetails {
    fn from(money: Money) -> Self {
        Self {
            amount: money.amount,
            currency: money.currency,
        }
    }
}

impl From<AmountDetails> for Money {
    fn from(details: AmountDetails) -> Self {
        Money::new(details.amount, details.currency)
    }
}

/// A payment session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub status: SessionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub acquiring_payments: Vec<AcquiringPayment>,
}

impl Session {
    /// The payment a refund applies to: the succeeded one, else the first.
    pub fn payment(&self) -> Option<&AcquiringPayment> {
        self.acquiring_payments
            .iter()
            .find(|p| p.status == PaymentStatus::Succeeded)
            .or_else(|| self.acquiring_payments.first())
    }
}

/// One card (or other) payment inside a session, with its refunds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcquiringPayment {
    pub id: String,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_details: Option<PaymentDetails>,
    pub amount_details: AmountDetails,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub refunds: Vec<Refund>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// How the customer paid. Cards carry brand and last 4; other types are kept as they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentDetails {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<Card>,
    /// Whatever else a non-card payment type carries.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    #[serde(default, deserialize_with = "null_as_default")]
    pub brand: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub last4: String,
}

/// A refund or a chargeback of a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: RefundId,
    pub status: RefundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    pub amount_details: AmountDetails,
    /// A chargeback is initiated by the card holder's bank, not by the merchant.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_chargeback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A webhook, tagged by `type`. Unknown types are kept, not rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    #[serde(rename = "type")]
    pub kind: WebhookType,
    pub session: Session,
}
