//! The payment as the agent sees it: Smart Glocal's `session/status` merged with the ledger
//! (who asked, why, and attempts Smart Glocal does not show yet). The refund flow decides on
//! this same view, so what the widget shows and what the proxy enforces cannot differ.

use shared::api::{CardView, PaymentView, RefundState, RefundView, Viewer};
use shared::smart_glocal as sg;
use shared::{Currency, Money, SessionId};

use crate::error::ApiError;
use crate::extract::Agent;
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
                note: row
                    .and_then(|r| r.note.as_ref())
                    .map(|n| n.as_str().to_owned()),
                // Why it failed, as the ledger recorded it (Smart Glocal's word, or ours).
                error_code: row
                    .filter(|_| state == RefundState::Failed)
                    .and_then(|r| r.error_code),
                // Smart Glocal's own word when it failed the refund and the ledger has not
                // recorded why yet (its webhook still on the way), as the ledger will put it.
                error_detail: row
                    .filter(|_| state == RefundState::Failed)
                    .and_then(|r| r.error_detail.clone())
                    .or_else(|| {
                        (state == RefundState::Failed && upstream_state == state)
                            .then(|| format!("Smart Glocal: {}", refund.status))
                    }),
                // Flagged where the unknown status is what is shown (the ledger knowing more,
                // its state is shown and the status told nothing).
                attention: row.and_then(|r| r.attention.clone()).or_else(|| {
                    (state == upstream_state)
                        .then(|| unknown_status(&refund.status))
                        .flatten()
                }),
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
        viewer: Viewer::default(),
        last_event_id: 0,
    })
}

/// A status this version does not know reads as in progress (its amount stays held): said,
/// not passed off as an ordinary refund on its way.
fn unknown_status(status: &sg::RefundStatus) -> Option<String> {
    matches!(status, sg::RefundStatus::Other(_))
        .then(|| format!("status `{status}`, unknown to this version; shown as in progress"))
}

/// `session/status` turned into the payment view for `agent`, or the error the agent sees.
pub async fn load_payment(
    state: &AppState,
    agent: &Agent,
    session: &SessionId,
) -> Result<PaymentView, ApiError> {
    // Read before the view: an event committed between the two is replayed to the stream
    // the widget opens from here (at worst twice, never missed).
    let last_event_id = state.ledger.last_event_seq(session).await?;
    let (_, mut view) = current(state, session).await?;
    view.viewer = viewer(state, agent, view.amount.currency).await?;
    view.last_event_id = last_event_id;
    Ok(view)
}

/// A fresh `session/status` and the payment's rows in the ledger, merged. The rows are read
/// while `session/status` is on its way, not after its answer. A refund recorded in between
/// (a webhook; without the payment's lock, as for a look-up, one of ours too) can only make
/// a refund Smart Glocal already lists look unresolved in the rows as well: the view then
/// counts it twice against what remains, never once too few. When both fail, Smart
/// Glocal's error is the one answered.
pub async fn current(
    state: &AppState,
    session: &SessionId,
) -> Result<(sg::Session, PaymentView), ApiError> {
    let rows = async {
        // The request is handed to its connection's task, woken on this thread; yielding
        // once lets it go out before the read, which on SQLite runs on this thread too.
        tokio::task::yield_now().await;
        state.ledger.rows_for_session(session).await
    };
    let (upstream, rows) = tokio::join!(state.upstream.status(session), rows);
    let upstream = upstream.map_err(status_error)?;
    let rows = rows?;
    let view = payment_view(&upstream, &rows, state.config.partial_refunds)
        .ok_or(ApiError::PaymentNotFound)?;
    Ok((upstream, view))
}

/// What `agent` may do on a payment in `currency`: their limits (the token's, else the
/// configuration's), what is left of the daily one, and the approval threshold.
pub async fn viewer(
    state: &AppState,
    agent: &Agent,
    currency: Currency,
) -> Result<Viewer, ApiError> {
    let binding = agent.binding(&state.config, currency);
    let money = |amount: Option<u64>| amount.map(|amount| Money::new(amount, currency));
    let daily_left = match binding.daily {
        Some(limit) => {
            let used = state.ledger.refunded_today(&agent.name, currency).await?;
            Some(limit.saturating_sub(used))
        }
        None => None,
    };
    Ok(Viewer {
        agent: agent.name.clone(),
        can_approve: agent.can_approve,
        refund_max: money(binding.per_refund),
        daily_left: money(daily_left),
        approval_above: money(binding.approval_above),
    })
}

fn status_error(error: UpstreamError) -> ApiError {
    match error {
        UpstreamError::Rejected(e) if e.code == "session_not_found" || e.code == "not_found" => {
            ApiError::PaymentNotFound
        }
        other => ApiError::Upstream(other),
    }
}

#[cfg(test)]
mod tests {
    use shared::RefundId;

    use super::*;
    use crate::ledger::test_rows::attempt;

    /// A succeeded USD 100.00 payment with these refunds (`id, amount, status, created ms`).
    fn session(refunds: &[(&str, u64, &str, i64)]) -> sg::Session {
        let refunds: Vec<serde_json::Value> = refunds
            .iter()
            .map(|(id, amount, status, at)| {
                serde_json::json!({
                    "id": id, "status": status,
                    "amount_details": {"amount": amount, "currency": "usd"},
                    "created_at": shared::Timestamp::from_unix_millis(*at),
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": "ps_1", "status": "accepted",
            "acquiring_payments": [{
                "id": "pay_1", "status": "succeeded",
                "amount_details": {"amount": 10000, "currency": "usd"},
                "refunds": refunds,
            }],
        }))
        .unwrap()
    }

    fn matched(mut row: RefundRow, refund_id: &str) -> RefundRow {
        row.refund_id = Some(refund_id.into());
        row
    }

    #[test]
    fn the_ledger_tells_who_asked_and_the_further_state_wins() {
        let upstream = session(&[("rf_1", 2000, "in_progress", 10)]);
        let row = matched(attempt(1, 2000, RefundState::Accepted, 5), "rf_1");
        let view = payment_view(&upstream, std::slice::from_ref(&row), true).unwrap();
        let [refund] = view.refunds.as_slice() else {
            panic!("{:?}", view.refunds)
        };
        assert_eq!(refund.refund_id, Some(RefundId::parse("rf_1").unwrap()));
        assert_eq!(refund.state, RefundState::Accepted, "the ledger is ahead");
        assert_eq!(refund.agent.as_deref(), Some("alice"));
        assert_eq!(refund.note.as_deref(), Some("charged twice"));
        assert_eq!(refund.attempt_id, row.attempt_id);

        // Smart Glocal ahead of the ledger (its webhook not in yet): Smart Glocal's state.
        let upstream = session(&[("rf_1", 2000, "accepted", 10)]);
        let behind = matched(attempt(1, 2000, RefundState::InProgress, 5), "rf_1");
        let view = payment_view(&upstream, &[behind], true).unwrap();
        assert_eq!(view.refunds[0].state, RefundState::Accepted);
    }

    /// A status this version does not know holds its amount as in progress would, and says
    /// so; a contradiction the ledger flagged is said before it.
    #[test]
    fn a_refund_status_unknown_to_this_version_is_held_and_flagged() {
        let upstream = session(&[
            ("rf_1", 2000, "completed", 10),
            ("rf_2", 1000, "accepted", 20),
            ("rf_3", 500, "reversed", 30),
        ]);
        let mut flagged = matched(attempt(1, 500, RefundState::InProgress, 5), "rf_3");
        flagged.attention = Some("amount 500 where the ledger holds 400".into());
        let view = payment_view(&upstream, &[flagged], true).unwrap();
        let states: Vec<_> = view.refunds.iter().map(|r| r.state).collect();
        assert_eq!(
            states,
            [
                RefundState::InProgress,
                RefundState::Accepted,
                RefundState::InProgress
            ]
        );
        assert_eq!(
            view.refunds[0].attention.as_deref(),
            Some("status `completed`, unknown to this version; shown as in progress")
        );
        assert_eq!(view.refunds[1].attention, None);
        assert_eq!(
            view.refunds[2].attention.as_deref(),
            Some("amount 500 where the ledger holds 400")
        );
        assert_eq!(view.remaining().amount, 10000 - 3500);
    }

    #[test]
    fn attempts_smart_glocal_does_not_show_are_listed_oldest_first() {
        let upstream = session(&[("rf_9", 1000, "accepted", 300)]);
        let unknown = attempt(1, 500, RefundState::Unknown, 200);
        let failed = attempt(2, 700, RefundState::Failed, 100);
        let mut elsewhere = attempt(3, 900, RefundState::Accepted, 50);
        elsewhere.origin = Origin::Elsewhere;
        elsewhere.refund_id = Some("rf_gone".into());
        let view = payment_view(&upstream, &[unknown, failed, elsewhere], true).unwrap();
        let listed: Vec<(u64, RefundState)> = view
            .refunds
            .iter()
            .map(|r| (r.amount.amount, r.state))
            .collect();
        // Failed is history (holds nothing); unknown still holds its amount; a refund the
        // ledger learned from Smart Glocal is only listed while Smart Glocal lists it.
        assert_eq!(
            listed,
            [
                (700, RefundState::Failed),
                (500, RefundState::Unknown),
                (1000, RefundState::Accepted)
            ]
        );
        assert_eq!(view.remaining().amount, 10000 - 1000 - 500);
    }

    #[test]
    fn a_session_without_a_payment_has_no_view() {
        let empty: sg::Session = serde_json::from_value(serde_json::json!({
            "id": "ps_1", "status": "created", "acquiring_payments": []
        }))
        .unwrap();
        assert!(payment_view(&empty, &[], true).is_none());
    }
}
