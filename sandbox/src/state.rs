//! The sandbox's memory: sessions by id with their project and refund count, the fault queue,
//! and where webhooks go. One `std::sync::Mutex`, never held across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use shared::smart_glocal::{
    AcquiringPayment, Card, Customer, PaymentDetails, PaymentStatus, Refund, RefundStatus, Session,
    SessionStatus,
};
use shared::{RefundId, SessionId, Timestamp};
use tokio::sync::watch;

use crate::config::{Project, RetryPolicy, SandboxConfig, DEMO_PROJECT};
use crate::control::{CreatePayment, SandboxSession};
use crate::error::ControlError;
use crate::faults::FaultQueue;

/// Shared by every handler and background task; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub projects: BTreeMap<String, Project>,
    pub verifier: signing::Verifier,
    pub signer: signing::Signer,
    pub webhook_delay: std::time::Duration,
    pub webhook_retry: RetryPolicy,
    pub timeout_fault_hang: std::time::Duration,
    pub store: Mutex<Store>,
    pub webhook_urls: RwLock<WebhookUrls>,
    pub http: reqwest::Client,
    /// Flips to `true` when the sandbox stops, so webhook tasks stop retrying.
    pub shutdown: watch::Sender<bool>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct WebhookUrls {
    pub default: Option<String>,
    pub per_project: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub sessions: BTreeMap<SessionId, Entry>,
    pub faults: FaultQueue,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub project: String,
    pub session: Session,
    pub refunds_received: usize,
}

impl AppState {
    pub fn new(config: SandboxConfig) -> Self {
        let mut store = Store::default();
        for seeded in config.seed.sessions {
            let entry = Entry {
                project: seeded.project,
                session: seeded.session,
                refunds_received: 0,
            };
            store.sessions.insert(entry.session.id.clone(), entry);
        }
        let per_project = config
            .projects
            .iter()
            .filter_map(|(id, p)| p.webhook_url.clone().map(|url| (id.clone(), Some(url))))
            .collect();
        let (shutdown, _) = watch::channel(false);
        Self(Arc::new(Inner {
            projects: config.projects,
            verifier: config.request_verifier,
            signer: config.webhook_signer,
            webhook_delay: config.webhook_delay,
            webhook_retry: config.webhook_retry,
            timeout_fault_hang: config.timeout_fault_hang,
            store: Mutex::new(store),
            webhook_urls: RwLock::new(WebhookUrls {
                default: config.webhook_url,
                per_project,
            }),
            http: reqwest::Client::new(),
            shutdown,
        }))
    }

    /// Where webhooks go from now on (`None`: nowhere). Project-specific addresses stay.
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.0
            .webhook_urls
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .default = url;
    }

    /// Where `project`'s webhooks go from now on, overriding the default address.
    pub fn set_project_webhook_url(&self, project: &str, url: Option<String>) {
        self.0
            .webhook_urls
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .per_project
            .insert(project.to_owned(), url);
    }

    pub(crate) fn webhook_url_for(&self, project: &str) -> Option<String> {
        let urls = self
            .0
            .webhook_urls
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match urls.per_project.get(project) {
            Some(url) => url.clone(),
            None => urls.default.clone(),
        }
    }

    /// Stops background webhook deliveries.
    pub fn shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves plain data behind, still consistent enough
        // for a sandbox: keep serving rather than poisoning every later call.
        self.0.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn project(&self, id: &str) -> Option<&Project> {
        self.0.projects.get(id)
    }

    pub(crate) fn view(&self, entry: &Entry) -> SandboxSession {
        SandboxSession {
            session: entry.session.clone(),
            project: entry.project.clone(),
            refunds_received: entry.refunds_received,
            partial_refunds_allowed: self
                .project(&entry.project)
                .is_some_and(|p| p.partial_refunds),
        }
    }

    pub(crate) fn create_payment(
        &self,
        request: CreatePayment,
    ) -> Result<SandboxSession, ControlError> {
        let project = request.project.unwrap_or_else(|| DEMO_PROJECT.to_owned());
        if self.project(&project).is_none() {
            return Err(ControlError::InvalidRequest(format!(
                "unknown project `{project}`"
            )));
        }
        if request.amount_details.amount == 0 {
            return Err(ControlError::InvalidRequest(
                "the amount must be greater than zero".into(),
            ));
        }
        let id = match request.session_id {
            Some(id) => id,
            None => SessionId::parse(&format!("ps_{}", short_id())).expect("ps_ + hex is valid"),
        };
        let now = now();
        let session = Session {
            id: id.clone(),
            status: SessionStatus::Accepted,
            created_at: Some(now),
            updated_at: Some(now),
            acquiring_payments: vec![AcquiringPayment {
                id: format!("pm_{}", short_id()),
                status: PaymentStatus::Succeeded,
                created_at: Some(now),
                finished_at: Some(now),
                customer: Some(Customer {
                    reference: Some(
                        request
                            .customer_reference
                            .unwrap_or_else(|| format!("cus_{}", short_id())),
                    ),
                }),
                payment_details: Some(PaymentDetails {
                    kind: "card".into(),
                    card: Some(Card {
                        brand: request.card_brand.unwrap_or_else(|| "visa".into()),
                        last4: request.card_last4.unwrap_or_else(|| "4242".into()),
                    }),
                    other: Default::default(),
                }),
                amount_details: request.amount_details,
                metadata: request.metadata,
                refunds: Vec::new(),
            }],
        };
        let mut store = self.store();
        if store.sessions.contains_key(&id) {
            return Err(ControlError::InvalidRequest(format!(
                "session {id} exists already"
            )));
        }
        let entry = Entry {
            project,
            session,
            refunds_received: 0,
        };
        let view = self.view(&entry);
        store.sessions.insert(id, entry);
        Ok(view)
    }
}

/// Now, cut to the microseconds the wire carries, so what is stored equals what is sent.
pub(crate) fn now() -> Timestamp {
    let at = time::OffsetDateTime::now_utc();
    let at = at
        .replace_nanosecond(at.nanosecond() / 1000 * 1000)
        .unwrap_or(at);
    Timestamp::from_offset_date_time(at)
}

/// Twelve random hex digits: ids that do not collide with those a proxy stored before a
/// sandbox restart.
pub(crate) fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

pub(crate) fn new_refund_id() -> RefundId {
    RefundId::parse(&format!("rf_{}", short_id())).expect("rf_ + hex is valid")
}

/// A new refund or chargeback, appended to the session's succeeded payment.
pub(crate) fn add_refund(
    session: &mut Session,
    amount: u64,
    status: RefundStatus,
    is_chargeback: bool,
    metadata: Option<serde_json::Value>,
) -> Option<RefundId> {
    let now = now();
    let payment = session
        .acquiring_payments
        .iter_mut()
        .find(|p| p.status == PaymentStatus::Succeeded)?;
    let id = new_refund_id();
    payment.refunds.push(Refund {
        id: id.clone(),
        status: status.clone(),
        created_at: Some(now),
        finished_at: status.is_final().then_some(now),
        amount_details: shared::smart_glocal::AmountDetails {
            amount,
            currency: payment.amount_details.currency,
        },
        is_chargeback,
        metadata,
    });
    session.updated_at = Some(now);
    Some(id)
}

/// What a card holder's bank may still take back of the session's succeeded payment: all of
/// it but earlier chargebacks. Refunds do not lower it: a payment refunded and then disputed
/// anyway costs the merchant twice, and happens.
pub(crate) fn chargeable(session: &Session) -> Option<u64> {
    payment_less(session, |r| r.is_chargeback)
}

/// What remains refundable of the session's succeeded payment.
pub(crate) fn remaining(session: &Session) -> Option<u64> {
    payment_less(session, |_| true)
}

/// The session's succeeded payment less its refunds (chargebacks included) that `counts` and
/// that hold money; `None` without a succeeded payment.
fn payment_less(
    session: &Session,
    counts: impl Fn(&shared::smart_glocal::Refund) -> bool,
) -> Option<u64> {
    let payment = session
        .acquiring_payments
        .iter()
        .find(|p| p.status == PaymentStatus::Succeeded)?;
    let taken: u64 = payment
        .refunds
        .iter()
        .filter(|r| counts(r) && r.status.holds_money())
        .map(|r| r.amount_details.amount)
        .sum();
    Some(payment.amount_details.amount.saturating_sub(taken))
}
