//! The refund rules the widget checks before submitting and the proxy checks on arrival.

use shared::api::{
    ErrorBody, ErrorCode, PaymentState, PaymentView, ProviderError, RefundAmount, RefundReason,
    RefundState, RefundSubmission, RefundView,
};
use shared::smart_glocal::PaymentStatus;
use shared::{Currency, FieldError, IdempotencyKey, Money, Note, SessionId};

fn usd(amount: u64) -> Money {
    Money::new(amount, Currency::parse("usd").unwrap())
}

fn refund(amount: u64, state: RefundState, is_chargeback: bool) -> RefundView {
    RefundView {
        attempt_id: None,
        refund_id: None,
        amount: usd(amount),
        state,
        is_chargeback,
        agent: None,
        reason: None,
        note: None,
        error_code: None,
        error_detail: None,
        attention: None,
        created_at: None,
        finished_at: None,
    }
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
            .map(|&(amount, state)| refund(amount, state, false))
            .collect(),
        partial_refunds_allowed: partial,
        viewer: Default::default(),
        last_event_id: 0,
    }
}

fn submit(amount: RefundAmount) -> RefundSubmission {
    RefundSubmission {
        amount,
        reason: RefundReason::RequestedByCustomer,
        note: None,
        idempotency_key: key("0123456789abcdef"),
        confirmed_amount: None,
    }
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
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

/// The confirmation binds: a full refund confirmed at what remained is refused once more
/// remains (an earlier refund failed meanwhile), not sent for the larger amount.
#[test]
fn a_confirmed_amount_binds_the_refund_to_it() {
    let while_confirming = payment(10_000, &[(4_000, RefundState::InProgress)], true);
    let full = submit(RefundAmount::Full).confirming(usd(6_000));
    assert_eq!(while_confirming.check_refund(&full), Ok(usd(6_000)));
    let after = payment(10_000, &[(4_000, RefundState::Failed)], true);
    assert_eq!(after.check_refund(&full), Err(ErrorCode::AmountChanged));
    // A partial refund is its amount; a confirmation of another is refused too.
    let partial = submit(RefundAmount::Partial(usd(1_000)));
    assert_eq!(
        after.check_refund(&partial.clone().confirming(usd(1_000))),
        Ok(usd(1_000))
    );
    assert_eq!(
        after.check_refund(&partial.confirming(usd(999))),
        Err(ErrorCode::AmountChanged)
    );
    // On the wire: optional, so API clients that do not send it keep today's meaning.
    let wire = serde_json::to_value(submit(RefundAmount::Full)).unwrap();
    assert!(wire.get("confirmed_amount").is_none(), "{wire}");
    let read: RefundSubmission = serde_json::from_value(
        serde_json::to_value(submit(RefundAmount::Full).confirming(usd(6_000))).unwrap(),
    )
    .unwrap();
    assert_eq!(read.confirmed_amount, Some(usd(6_000)));
}

/// What is shown never goes back: an answer or event older than the state shown (the
/// submission's "in progress" after the stream's "accepted"), or a re-read answered before
/// an event, leaves the newer state.
#[test]
fn a_refund_shown_never_moves_back_to_an_older_state() {
    let with_id = |state| {
        let mut view = payment(10_000, &[(1_000, state)], true);
        view.refunds[0].refund_id = Some(shared::RefundId::parse("rf_1").unwrap());
        view
    };
    let mut shown = with_id(RefundState::InProgress);
    let mut accepted = shown.refunds[0].clone();
    accepted.state = RefundState::Accepted;
    shown.upsert_refund(accepted.clone());
    assert_eq!(shown.refunds[0].state, RefundState::Accepted);
    let mut older = accepted.clone();
    older.state = RefundState::InProgress;
    shown.upsert_refund(older);
    assert_eq!(shown.refunds[0].state, RefundState::Accepted, "not back");
    assert_eq!(shown.refunds.len(), 1);

    let mut reread = with_id(RefundState::InProgress);
    reread.keep_ahead(shown);
    assert_eq!(reread.refunds[0].state, RefundState::Accepted);
    // A re-read that is ahead of what is shown wins.
    let mut ahead = with_id(RefundState::Accepted);
    ahead.keep_ahead(with_id(RefundState::Pending));
    assert_eq!(ahead.refunds[0].state, RefundState::Accepted);
    // A refund that failed at Smart Glocal (its id known) is final: an older event of it
    // (in progress) does not bring it back, and accepted and failed never replace each other.
    let mut failed = with_id(RefundState::Failed);
    failed.upsert_refund(accepted);
    assert_eq!(failed.refunds[0].state, RefundState::Failed, "not accepted");
    let mut in_progress = failed.refunds[0].clone();
    in_progress.state = RefundState::InProgress;
    failed.upsert_refund(in_progress);
    assert_eq!(failed.refunds[0].state, RefundState::Failed, "not back");
    let mut done = with_id(RefundState::Accepted);
    let mut failed_later = done.refunds[0].clone();
    failed_later.state = RefundState::Failed;
    done.upsert_refund(failed_later);
    assert_eq!(done.refunds[0].state, RefundState::Accepted);

    // The steps back the ledger takes. An attempt failed before its refund was known (given
    // up by reconciliation, or refused, an error code and all) that Smart Glocal shows after
    // all, naming it: it moves on with that refund.
    let attempt = |mut view: PaymentView| {
        view.refunds[0].attempt_id = Some(shared::AttemptId::from_random(7));
        view
    };
    for code in [None, Some(ErrorCode::UpstreamRejected)] {
        let mut given_up = attempt(payment(10_000, &[(1_000, RefundState::Failed)], true));
        given_up.refunds[0].error_code = code;
        let found = attempt(with_id(RefundState::InProgress)).refunds[0].clone();
        let mut shown = given_up.clone();
        shown.upsert_refund(found);
        assert_eq!(shown.refunds.len(), 1);
        assert_eq!(shown.refunds[0].state, RefundState::InProgress, "{code:?}");
        let mut reread = attempt(with_id(RefundState::InProgress));
        reread.keep_ahead(given_up);
        assert_eq!(reread.refunds[0].state, RefundState::InProgress, "{code:?}");
    }
    // An attempt re-bound to the refund naming it: its state is that refund's own, earlier
    // or not; the refund it held becomes a row of its own, not this one.
    let mut bound = attempt(with_id(RefundState::Accepted));
    let mut rebound = bound.refunds[0].clone();
    rebound.refund_id = Some(shared::RefundId::parse("rf_2").unwrap());
    rebound.state = RefundState::InProgress;
    bound.upsert_refund(rebound);
    let mut elsewhere = bound.refunds[0].clone();
    elsewhere.attempt_id = None;
    elsewhere.agent = None;
    elsewhere.refund_id = Some(shared::RefundId::parse("rf_1").unwrap());
    elsewhere.state = RefundState::Accepted;
    bound.upsert_refund(elsewhere);
    assert_eq!(bound.refunds.len(), 2, "{:?}", bound.refunds);
    assert_eq!(bound.refunds[0].state, RefundState::InProgress);
    assert_eq!(
        bound.refunds[0].refund_id.as_ref().unwrap().as_str(),
        "rf_2"
    );
    assert_eq!(bound.refunds[1].attempt_id, None);

    // An attempt whose own request was refused lets go of the refund it held by amount
    // (accepted, the dashboard's): it is failed without it, and that refund a row of its own,
    // counted once; a re-read agrees.
    let mut holding = attempt(with_id(RefundState::Accepted));
    let mut released = holding.refunds[0].clone();
    released.refund_id = None;
    released.state = RefundState::Failed;
    released.error_code = Some(ErrorCode::UpstreamRejected);
    let mut theirs = holding.refunds[0].clone();
    theirs.attempt_id = None;
    holding.upsert_refund(released.clone());
    holding.upsert_refund(theirs.clone());
    assert_eq!(holding.refunds[0].state, RefundState::Failed);
    assert_eq!(holding.refunded(), 1_000, "{:?}", holding.refunds);
    let mut reread = holding.clone();
    reread.refunds = vec![released, theirs];
    reread.keep_ahead(attempt(with_id(RefundState::Accepted)));
    assert_eq!(reread.refunds[0].state, RefundState::Failed);
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
    let made = |reason, note: &str| {
        RefundSubmission::new(RefundAmount::Full, reason, note, key("0123456789abcdef"))
            .map_err(|FieldError(code)| code)
    };
    assert_eq!(
        made(RefundReason::Other, "").map(|_| ()),
        Err(ErrorCode::NoteRequired)
    );
    assert_eq!(
        made(RefundReason::Other, "   ").map(|_| ()),
        Err(ErrorCode::NoteRequired)
    );
    let with_note = made(RefundReason::Other, "  customer called ").unwrap();
    assert_eq!(
        with_note.note.as_ref().map(Note::as_str),
        Some("customer called")
    );
    assert!(payment(10_000, &[], true).check_refund(&with_note).is_ok());
    assert_eq!(
        made(RefundReason::Duplicate, &"x".repeat(501)).map(|_| ()),
        Err(ErrorCode::NoteTooLong)
    );
    assert!(made(RefundReason::Duplicate, "").unwrap().note.is_none());
    assert!(IdempotencyKey::parse("short").is_err());

    // Read from JSON, the same rules hold, and the error names the rule's code.
    let read = |body: serde_json::Value| {
        serde_json::from_value::<RefundSubmission>(body)
            .map_err(|e| FieldError::code_in(&e.to_string()))
    };
    let base = serde_json::json!({"amount": "full", "reason": "other", "idempotency_key": "0123456789abcdef"});
    assert_eq!(
        read(base.clone()).map(|_| ()),
        Err(Some(ErrorCode::NoteRequired))
    );
    let mut blank = base.clone();
    blank["note"] = " \n ".into();
    assert_eq!(read(blank).map(|_| ()), Err(Some(ErrorCode::NoteRequired)));
    let mut long = base.clone();
    long["note"] = "é".repeat(501).into();
    assert_eq!(read(long).map(|_| ()), Err(Some(ErrorCode::NoteTooLong)));
    let mut bad_key = base.clone();
    bad_key["note"] = "ok".into();
    bad_key["idempotency_key"] = "short".into();
    assert_eq!(
        read(bad_key).map(|_| ()),
        Err(Some(ErrorCode::InvalidIdempotencyKey))
    );
    let mut good = base;
    good["note"] = " ok ".into();
    assert_eq!(read(good).unwrap().note.unwrap().as_str(), "ok");
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

const ALL_STATES: [RefundState; 5] = [
    RefundState::Pending,
    RefundState::Unknown,
    RefundState::InProgress,
    RefundState::Accepted,
    RefundState::Failed,
];

/// The state an agent must read, written out independently of `PaymentView::state`.
fn expected_state(status: &PaymentStatus, refunds: &[RefundView], amount: u64) -> PaymentState {
    if refunds
        .iter()
        .any(|r| r.is_chargeback && r.state != RefundState::Failed)
    {
        return PaymentState::Disputed;
    }
    match status {
        PaymentStatus::Succeeded => {}
        PaymentStatus::Pending | PaymentStatus::InProgress => return PaymentState::Processing,
        PaymentStatus::Failed => return PaymentState::Failed,
        PaymentStatus::Other(_) => return PaymentState::Unknown,
    }
    let refunds: Vec<_> = refunds.iter().filter(|r| !r.is_chargeback).collect();
    let open = [
        RefundState::Pending,
        RefundState::Unknown,
        RefundState::InProgress,
    ];
    if refunds.iter().any(|r| open.contains(&r.state)) {
        return PaymentState::RefundPending;
    }
    let accepted: u64 = refunds
        .iter()
        .filter(|r| r.state == RefundState::Accepted)
        .map(|r| r.amount.amount)
        .sum();
    match accepted {
        0 => PaymentState::Succeeded,
        a if a >= amount => PaymentState::Refunded,
        _ => PaymentState::PartiallyRefunded,
    }
}

#[test]
fn the_payment_state_follows_its_refunds_and_chargebacks_in_every_combination() {
    let statuses = [
        PaymentStatus::Succeeded,
        PaymentStatus::InProgress,
        PaymentStatus::Pending,
        PaymentStatus::Failed,
        PaymentStatus::Other("refunded_by_magic".into()),
    ];
    // Up to two refunds or chargebacks, each full or partial, in every state.
    let mut rows = vec![];
    for state in ALL_STATES {
        for amount in [4_000, 10_000] {
            for is_chargeback in [false, true] {
                rows.push(refund(amount, state, is_chargeback));
            }
        }
    }
    let mut combinations: Vec<Vec<RefundView>> = vec![vec![]];
    for a in &rows {
        combinations.push(vec![a.clone()]);
        for b in &rows {
            combinations.push(vec![a.clone(), b.clone()]);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for status in &statuses {
        for refunds in &combinations {
            let mut view = payment(10_000, &[], true);
            view.status = status.clone();
            view.refunds = refunds.clone();
            let state = view.state();
            assert_eq!(
                state,
                expected_state(status, refunds, 10_000),
                "{status:?} {refunds:?}"
            );
            seen.insert(state);
            if state == PaymentState::Disputed || state == PaymentState::Refunded {
                assert!(!view.refundable(), "{status:?} {refunds:?}");
            }
        }
    }
    assert_eq!(seen.len(), 8, "every state is reachable: {seen:?}");
}

#[test]
fn fully_refunded_only_once_the_refund_settled() {
    let mut view = payment(10_000, &[(10_000, RefundState::InProgress)], true);
    assert_eq!(view.state(), PaymentState::RefundPending);
    assert_eq!(view.pending_refunds(), usd(10_000));
    assert_eq!(view.remaining(), usd(0));
    view.refunds[0].state = RefundState::Accepted;
    assert_eq!(view.state(), PaymentState::Refunded);
    assert_eq!(view.pending_refunds(), usd(0));
    assert_eq!(view.settled_refunds(), usd(10_000));
}

#[test]
fn a_chargeback_is_a_dispute_not_a_refund() {
    let mut view = payment(10_000, &[], true);
    view.refunds
        .push(refund(2_000, RefundState::Accepted, true));
    assert_eq!(view.state(), PaymentState::Disputed);
    assert_eq!(view.settled_refunds(), usd(0), "a chargeback is no refund");
    assert_eq!(view.refund_attempts().count(), 0);
    assert_eq!(view.chargebacks().count(), 1);
    assert_eq!(
        view.check_refund(&submit(RefundAmount::Full)),
        Err(ErrorCode::NotRefundable),
        "the money is already back with the card holder's bank"
    );
}

#[test]
fn what_remains_after_a_refund_is_told_before_confirming() {
    let view = payment(10_000, &[(2_500, RefundState::Accepted)], true);
    assert_eq!(view.remaining_after(usd(5_000)), usd(2_500));
    assert_eq!(view.remaining_after(usd(7_500)), usd(0));
}

#[test]
fn an_error_body_carries_the_providers_reason_when_there_is_one() {
    let plain: ErrorBody =
        serde_json::from_value(serde_json::json!({"code": "internal", "message": "x"})).unwrap();
    assert_eq!(plain.provider, None);
    assert_eq!(
        serde_json::to_value(&plain).unwrap(),
        serde_json::json!({"code": "internal", "message": "x"})
    );
    let declined: ErrorBody = serde_json::from_value(serde_json::json!({
        "code": "upstream_rejected", "message": "x",
        "provider": {"code": "refund_declined", "description": "declined by the acquirer"}
    }))
    .unwrap();
    assert_eq!(
        declined.provider,
        Some(ProviderError {
            code: "refund_declined".into(),
            description: "declined by the acquirer".into()
        })
    );
}

/// Each closed enum's name (logs, ledger columns, CSS classes) is the word serde puts on the
/// wire, and parses back to the same variant.
#[test]
fn every_closed_enum_names_itself_as_serde_does() {
    use shared::api::{ErrorCode, HistoryKind, RefundReason, RefundState};
    use shared::IntoEnumIterator;

    fn check<T>(name: fn(T) -> &'static str)
    where
        T: IntoEnumIterator
            + serde::Serialize
            + std::str::FromStr
            + PartialEq
            + std::fmt::Debug
            + Copy,
    {
        let mut seen = 0;
        for variant in T::iter() {
            let wire = serde_json::to_value(variant).unwrap();
            assert_eq!(wire, serde_json::Value::from(name(variant)), "{variant:?}");
            assert_eq!(name(variant).parse::<T>().ok(), Some(variant));
            seen += 1;
        }
        assert!(seen > 1, "the enum iterates its variants");
    }
    check::<ErrorCode>(ErrorCode::name);
    check::<RefundState>(RefundState::as_str);
    check::<RefundReason>(RefundReason::as_str);
    check::<HistoryKind>(HistoryKind::as_str);
    assert!(ErrorCode::iter().any(|c| c == ErrorCode::OverDailyLimit));
}

/// What the widget shows as refundable, and tells the host in `sg-refund:ready`: what remains
/// where a refund can be asked for, else nothing.
#[test]
fn refundable_now_is_what_a_refund_can_still_be_asked_for() {
    let partly = [(2_500, RefundState::Accepted)];
    assert_eq!(payment(10_000, &partly, true).refundable_now(), usd(7_500));
    // Partial refunds off and part refunded: the rest cannot be asked for either.
    assert_eq!(payment(10_000, &partly, false).refundable_now(), usd(0));
    assert_eq!(payment(10_000, &[], false).refundable_now(), usd(10_000));
    let mut failed = payment(10_000, &[], true);
    failed.status = PaymentStatus::Failed;
    assert_eq!(failed.refundable_now(), usd(0));
}
