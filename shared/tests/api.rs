//! The refund rules the widget checks before submitting and the proxy checks on arrival.

use shared::api::{
    ErrorCode, PaymentView, RefundAmount, RefundReason, RefundState, RefundSubmission, RefundView,
};
use shared::smart_glocal::PaymentStatus;
use shared::{Currency, Money, SessionId};

fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("usd").unwrap())
}

fn payment(amount: u64, refunded: &[(u64, RefundState)], partial: bool) -> PaymentView {
    PaymentView {
        session_id: SessionId::parse("ps_1").unwrap(),
        payment_id: "pm_1".into(),
        status: PaymentStatus::Succeeded,
        amount: usd(amount),
        payment_type: "card".into(),
        card: None,
        customer_reference: None,
        created_at: None,
        refunds: refunded
            .iter()
            .map(|&(amount, state)| RefundView {
                attempt_id: None,
                refund_id: None,
                amount: usd(amount),
                state,
                is_chargeback: false,
                agent: None,
                reason: None,
                created_at: None,
                finished_at: None,
            })
            .collect(),
        partial_refunds_allowed: partial,
    }
}

fn submit(amount: RefundAmount) -> RefundSubmission {
    RefundSubmission {
        amount,
        reason: RefundReason::RequestedByCustomer,
        note: None,
        idempotency_key: "0123456789abcdef".into(),
    }
}

#[test]
fn a_full_refund_takes_what_remains() {
    let view = payment(
        10_000,
        &[(2_500, RefundState::Accepted), (1_000, RefundState::Failed)],
        true,
    );
    assert_eq!(view.remaining(), usd(7_500));
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Full)),
        Ok(usd(7_500))
    );
}

#[test]
fn refund_above_the_remaining_amount_is_rejected() {
    let view = payment(10_000, &[(6_000, RefundState::InProgress)], true);
    let result = view.check_refund(&submit(RefundAmount::Partial(usd(6_000))));
    assert_eq!(result, Err(ErrorCode::ExceedsRemaining));
}

#[test]
fn partial_refunds_are_refused_where_they_are_off() {
    let view = payment(10_000, &[], false);
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Partial(usd(100)))),
        Err(ErrorCode::PartialNotAllowed)
    );
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Partial(usd(10_000)))),
        Ok(usd(10_000))
    );
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Full)),
        Ok(usd(10_000))
    );
}

#[test]
fn nothing_can_be_refunded_from_a_fully_refunded_or_failed_payment() {
    let view = payment(10_000, &[(10_000, RefundState::Accepted)], true);
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Full)),
        Err(ErrorCode::NotRefundable)
    );
    let mut failed = payment(10_000, &[], true);
    failed.status = PaymentStatus::Failed;
    assert!(!failed.refundable());
}

#[test]
fn the_amount_must_be_in_the_payment_currency() {
    let view = payment(10_000, &[], true);
    let eur = Money::new(100, Currency::parse("eur").unwrap());
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Partial(eur))),
        Err(ErrorCode::CurrencyMismatch)
    );
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Partial(usd(0)))),
        Err(ErrorCode::AmountNotPositive)
    );
}

#[test]
fn other_needs_a_note_and_keys_have_a_shape() {
    let view = payment(10_000, &[], true);
    let mut other = submit(RefundAmount::Full);
    other.reason = RefundReason::Other;
    assert_eq!(view.check_refund(&other), Err(ErrorCode::NoteRequired));
    other.note = Some("   ".into());
    assert_eq!(view.check_refund(&other), Err(ErrorCode::NoteRequired));
    other.note = Some("customer called".into());
    assert!(view.check_refund(&other).is_ok());
    other.note = Some("x".repeat(501));
    assert_eq!(view.check_refund(&other), Err(ErrorCode::NoteTooLong));
    let mut short = submit(RefundAmount::Full);
    short.idempotency_key = "short".into();
    assert_eq!(
        view.check_refund(&short),
        Err(ErrorCode::InvalidIdempotencyKey)
    );
}

#[test]
fn submissions_and_errors_have_a_stable_json_shape() {
    let json = serde_json::to_value(submit(RefundAmount::Partial(usd(1050)))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "amount": {"partial": {"amount": 1050, "currency": "usd"}},
            "reason": "requested_by_customer",
            "idempotency_key": "0123456789abcdef"
        })
    );
    let full: RefundSubmission = serde_json::from_value(serde_json::json!({
        "amount": "full", "reason": "duplicate", "idempotency_key": "0123456789abcdef"
    }))
    .unwrap();
    assert_eq!(full.amount, RefundAmount::Full);
    assert_eq!(ErrorCode::ExceedsRemaining.name(), "exceeds_remaining");
    let unknown_field = serde_json::from_value::<RefundSubmission>(serde_json::json!({
        "amount": "full", "reason": "duplicate", "idempotency_key": "0123456789abcdef", "x": 1
    }));
    assert!(unknown_field.is_err());
}

#[test]
fn refund_states_never_go_backwards() {
    assert!(RefundState::InProgress.can_become(RefundState::Accepted));
    assert!(RefundState::Unknown.can_become(RefundState::InProgress));
    assert!(!RefundState::Accepted.can_become(RefundState::InProgress));
    assert!(!RefundState::Accepted.can_become(RefundState::Failed));
    assert!(!RefundState::InProgress.can_become(RefundState::InProgress));
}

#[test]
fn refunds_summing_beyond_u64_saturate_instead_of_overflowing() {
    // Found by the fuzz target: three ledger-sized refunds overflowed `sum` (a panic in debug).
    let big = u64::try_from(i64::MAX).unwrap();
    let view = payment(
        100,
        &[
            (big, RefundState::Accepted),
            (big, RefundState::Accepted),
            (big, RefundState::Unknown),
        ],
        true,
    );
    assert_eq!(view.refunded(), u64::MAX);
    assert_eq!(view.remaining().amount, 0);
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Full)),
        Err(ErrorCode::NotRefundable)
    );
}
