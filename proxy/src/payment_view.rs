//! The payment as the agent sees it: Smart Glocal's `session/status` merged with the ledger
//! (who asked, why, and attempts Smart Glocal does not show yet). The refund flow decides on
//! this same view, so what the widget shows and what the proxy enforces cannot differ.

use shared::api::{CardView, PaymentView, RefundState, RefundView};
use shared::smart_glocal as sg;
use shared::SessionId;

use crate::error::ApiError;
use crate::ledger::{Origin, RefundRow};
use crate::state::AppState;
use crate::upstream::UpstreamError;

/// The payment as the widget shows it: Smart Glocal's refunds, enriched by the ledger (who
/// asked, why), plus attempts the ledger holds that Smart Glocal does not show: unresolved
/// ones still count against what remains; failed ones are history.
pub fn payment_view(
    session: &sg::Session,
    rows: &[RefundRow],
    partial_refunds_allowed: bool,
) -> Option<PaymentView> {
    let payment = session.payment()?;
    let mut refunds: Vec<RefundView> = payment
        .refunds
        .iter()
        .map(|refund| {
            let row = rows
                .iter()
                .find(|r| r.refund_id.as_deref() == Some(refund.id.as_str()));
            let upstream_state = RefundState::from(&refund.status);
            let state = match row.map(|r| r.state) {
                Some(ledger) if ledger.rank() > upstream_state.rank() => ledger,
                _ => upstream_state,
            };
            RefundView {
                attempt_id: row.and_then(|r| r.attempt_id.clone()),
                refund_id: Some(refund.id.clone()),
                amount: refund.amount_details.into(),
                state,
                is_chargeback: refund.is_chargeback,
                agent: row.and_then(|r| r.agent.clone()),
                reason: row.and_then(|r| r.reason),
                note: row.and_then(|r| r.note.clone()),
                error_code: None,
                error_detail: None,
                created_at: refund.created_at,
                finished_at: refund.finished_at,
            }
        })
        .collect();
    for row in rows {
        let shown = row
            .refund_id
            .as_deref()
            .is_some_and(|id| payment.refunds.iter().any(|r| r.id.as_str() == id));
        // Failed attempts are listed too (they hold no money, so what remains is unchanged):
        // the agent sees after a reload the same history the live events showed.
        if row.origin == Origin::Proxy && !shown {
            refunds.push(row.view());
        }
    }
    // Oldest first, whichever side knew of it; stable, so upstream's own order holds on ties.
    refunds.sort_by_key(|r| r.created_at.map(|t| t.unix_millis()));
    let card = payment
        .payment_details
        .as_ref()
        .and_then(|d| d.card.as_ref());
    Some(PaymentView {
        session_id: session.id.clone(),
        payment_id: payment.id.clone(),
        status: payment.status.clone(),
        amount: payment.amount_details.into(),
        payment_type: payment
            .payment_details
            .as_ref()
            .map(|d| d.kind.clone())
            .unwrap_or_else(|| "card".into()),
        card: card.map(|c| CardView {
            brand: c.brand.clone(),
            last4: c.last4.clone(),
        }),
        customer_reference: payment.customer.as_ref().and_then(|c| c.reference.clone()),
        created_at: payment.created_at.or(session.created_at),
        refunds,
        partial_refunds_allowed,
    })
}

/// `session/status` turned into the payment view, or the error the agent sees.
pub async fn load_payment(state: &AppState, session: &SessionId) -> Result<PaymentView, ApiError> {
    let upstream = state.upstream.status(session).await.map_err(status_error)?;
    let rows = state.ledger.rows_for_session(session).await?;
    payment_view(&upstream, &rows, state.config.partial_refunds).ok_or(ApiError::PaymentNotFound)
}

pub(crate) fn status_error(error: UpstreamError) -> ApiError {
    match error {
        UpstreamError::Rejected(e) if e.code == "session_not_found" || e.code == "not_found" => {
            ApiError::PaymentNotFound
        }
        other => ApiError::Upstream(other),
    }
}
