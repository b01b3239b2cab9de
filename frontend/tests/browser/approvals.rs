//! Four eyes in the widget: the agent's allowance and the approval threshold before they
//! type; a request awaiting approval offers Approve / Reject to another agent who may decide,
//! and to nobody else.

use std::cell::RefCell;
use std::rc::Rc;

use frontend::api::Submitted;
use frontend::components::Decide;
use frontend::testids::*;
use leptos::prelude::Update;
use shared::api::{RefundState, Viewer};
use shared::{AttemptId, Locale, Money, Note};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::*;

type Decisions = Rc<RefCell<Vec<(AttemptId, bool, Option<String>)>>>;

/// A $100.00 payment with June's request awaiting approval, seen by `agent` (who may approve
/// or not); with the request.
fn june_asks_of(
    agent: &str,
    can_approve: bool,
) -> (shared::api::PaymentView, shared::api::RefundView) {
    let mut view = payment(10_000, "usd", true);
    let request = junior_request(&view);
    view.refunds.push(request.clone());
    view.viewer = Viewer {
        agent: agent.into(),
        can_approve,
        ..Viewer::default()
    };
    (view, request)
}

/// June's request in Sam's panel (he may approve), every decision failing to reach the proxy;
/// with the decisions counted and the request.
async fn panel_deciding_in_vain() -> (Mounted, Rc<std::cell::Cell<u32>>, shared::api::RefundView) {
    let (view, request) = june_asks_of("sam", true);
    let calls = Rc::new(std::cell::Cell::new(0));
    let counted = calls.clone();
    let decide: Decide = Rc::new(move |_, _, _| {
        counted.set(counted.get() + 1);
        Box::pin(async { Err(frontend::api::CallError::Network) })
    });
    let (submit, _) = counting_submit(None);
    let panel = mount_deciding_panel(view, Locale::En, submit, decide);
    settle().await;
    (panel, calls, request)
}

#[wasm_bindgen_test]
async fn a_decision_that_did_not_reach_the_proxy_can_be_tried_again() {
    let (panel, calls, _) = panel_deciding_in_vain().await;
    panel.click(APPROVE);
    settle().await;
    assert!(panel.visible(FORM_ERROR), "the failure is said");
    assert!(panel.attr(APPROVE, "disabled").is_none(), "Approve is back");
    panel.click(APPROVE);
    settle().await;
    assert_eq!(calls.get(), 2);
    assert_eq!(panel.text(REFUND_STATE), "Awaiting approval");
}

#[wasm_bindgen_test]
async fn the_note_typed_stays_through_a_failed_rejection_and_a_live_update() {
    let (panel, _, request) = panel_deciding_in_vain().await;
    panel.type_text(APPROVAL_NOTE, "no proof of return");
    settle().await;
    panel.click(REJECT);
    settle().await;
    assert!(panel.visible(FORM_ERROR), "the failure is said");
    assert_eq!(panel.value(APPROVAL_NOTE), "no proof of return");
    assert!(
        panel.attr(REJECT, "disabled").is_none(),
        "Reject can be tried again"
    );
    // Another refund of the payment changes while the approver types: the rows render anew.
    let other = refund(
        Money::new(500, request.amount.currency),
        RefundState::Accepted,
        false,
    );
    panel.payment.update(|p| p.upsert_refund(other));
    settle().await;
    assert_eq!(panel.count(REFUND_ROW), 2);
    assert_eq!(panel.value(APPROVAL_NOTE), "no proof of return");
}

#[wasm_bindgen_test]
async fn after_a_decision_the_keyboard_stays_in_the_widget() {
    let (panel, _, _) = panel_of("sam", true, RefundState::Accepted, Locale::En).await;
    panel.get(APPROVE).focus().unwrap();
    panel.click(APPROVE);
    settle().await;
    // Focus moves on the next frame.
    frontend::api::sleep(50).await;
    assert!(
        panel.find(APPROVE).is_none(),
        "the decided request offers nothing"
    );
    let focused = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
        .and_then(|e| e.get_attribute("data-testid"));
    assert_eq!(focused.as_deref(), Some(STATUS_LIVE));
}

/// An agent who moved on while the decision was on its way (to a field of the host's) keeps
/// their place: the answer takes the keyboard nowhere.
#[wasm_bindgen_test]
async fn after_a_slow_decision_the_keyboard_stays_where_the_agent_moved_it() {
    let (view, request) = june_asks_of("sam", true);
    let decide: Decide = Rc::new(move |_, _, _| {
        let answer = shared::api::RefundView {
            state: RefundState::InProgress,
            ..request.clone()
        };
        Box::pin(async move {
            frontend::api::sleep(100).await;
            Ok((answer, Submitted::Created))
        })
    });
    let (submit, _) = counting_submit(None);
    let panel = mount_deciding_panel(view, Locale::En, submit, decide);
    settle().await;
    let document = web_sys::window().unwrap().document().unwrap();
    let elsewhere: web_sys::HtmlElement =
        wasm_bindgen::JsCast::unchecked_into(document.create_element("input").unwrap());
    document.body().unwrap().append_child(&elsewhere).unwrap();
    panel.click(APPROVE);
    elsewhere.focus().unwrap();
    frontend::api::sleep(250).await;
    assert_eq!(panel.text(REFUND_STATE), "In progress", "the answer came");
    assert_eq!(document.active_element(), Some(elsewhere.clone().into()));
    elsewhere.remove();
}

/// Records each decision and answers with the request moved to `state`.
fn recording_decide(request: shared::api::RefundView, state: RefundState) -> (Decide, Decisions) {
    let decisions: Decisions = Rc::default();
    let seen = decisions.clone();
    let decide: Decide = Rc::new(
        move |attempt: AttemptId, approve: bool, note: Option<Note>| {
            seen.borrow_mut()
                .push((attempt, approve, note.map(|n| n.as_str().to_owned())));
            let answer = shared::api::RefundView {
                state,
                ..request.clone()
            };
            Box::pin(async move { Ok((answer, Submitted::Created)) })
        },
    );
    (decide, decisions)
}

fn junior_request(view: &shared::api::PaymentView) -> shared::api::RefundView {
    shared::api::RefundView {
        agent: Some("june".into()),
        ..refund(
            Money::new(8_000, view.amount.currency),
            RefundState::AwaitingApproval,
            false,
        )
    }
}

/// June's request on a $100.00 payment, in the panel of `agent` (who may approve or not),
/// deciding through a recorder that answers with the request moved to `answer`.
async fn panel_of(
    agent: &str,
    can_approve: bool,
    answer: RefundState,
    locale: Locale,
) -> (Mounted, Decisions, shared::api::RefundView) {
    let (view, request) = june_asks_of(agent, can_approve);
    let (submit, _) = counting_submit(None);
    let (decide, decisions) = recording_decide(request.clone(), answer);
    let panel = mount_deciding_panel(view, locale, submit, decide);
    settle().await;
    (panel, decisions, request)
}

#[wasm_bindgen_test]
async fn the_allowance_and_the_threshold_are_said_before_typing() {
    let mut view = payment(10_000, "usd", true);
    let usd = view.amount.currency;
    view.viewer = Viewer {
        agent: "june".into(),
        refund_max: Some(Money::new(7_000, usd)),
        daily_left: Some(Money::new(6_500, usd)),
        approval_above: Some(Money::new(5_000, usd)),
        ..Viewer::default()
    };
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(view.clone(), Locale::En, submit);
    settle().await;
    assert_eq!(
        panel.text(ALLOWANCE),
        "You can refund up to $65.00 now. Refunds above $50.00 (yours of this payment together) wait for a second agent's approval."
    );
    drop(panel);
    let (submit, _) = counting_submit(None);
    let panel = mount_panel(view, Locale::Ru, submit);
    settle().await;
    assert!(
        panel
            .text(ALLOWANCE)
            .starts_with("Вы можете вернуть до 65,00"),
        "{}",
        panel.text(ALLOWANCE)
    );
}

/// A refund of the agent's own leaves less of their day: the allowance said before typing is
/// what the proxy will now count, not what it was when the payment was looked up.
#[wasm_bindgen_test]
async fn the_allowance_is_less_by_a_refund_just_made() {
    let mut view = payment(10_000, "usd", true);
    let usd = view.amount.currency;
    view.viewer = Viewer {
        agent: "june".into(),
        refund_max: Some(Money::new(5_000, usd)),
        daily_left: Some(Money::new(6_500, usd)),
        ..Viewer::default()
    };
    let made = refund(Money::new(4_000, usd), RefundState::InProgress, false);
    let (submit, _) = counting_submit(Some(Ok((made, Submitted::Created))));
    let panel = mount_panel(view, Locale::En, submit);
    settle().await;
    assert_eq!(panel.text(ALLOWANCE), "You can refund up to $50.00 now.");
    panel.review_partial("40.00").await;
    panel.click(CONFIRM_BUTTON);
    settle().await;
    assert_eq!(panel.text(ALLOWANCE), "You can refund up to $25.00 now.");
}

/// A replay (the answer to a try that got none here) uses the day as a new refund does; a
/// refund already failed when answered uses none of it.
#[wasm_bindgen_test]
async fn the_allowance_counts_a_replay_and_not_a_failed_refund() {
    let mut view = payment(10_000, "usd", true);
    let usd = view.amount.currency;
    view.viewer = Viewer {
        agent: "june".into(),
        daily_left: Some(Money::new(6_500, usd)),
        ..Viewer::default()
    };
    for (state, how, left) in [
        (RefundState::InProgress, Submitted::Replayed, "$25.00"),
        (RefundState::Failed, Submitted::Created, "$65.00"),
    ] {
        let made = refund(Money::new(4_000, usd), state, false);
        let (submit, _) = counting_submit(Some(Ok((made, how))));
        let panel = mount_panel(view.clone(), Locale::En, submit);
        panel.review_partial("40.00").await;
        panel.click(CONFIRM_BUTTON);
        settle().await;
        assert_eq!(
            panel.text(ALLOWANCE),
            format!("You can refund up to {left} now."),
            "{how:?} {state:?}"
        );
    }
}

/// Above the threshold, the confirmation says the refund waits for a second agent (it only
/// records a request); at or below it, it says the refund as before.
#[wasm_bindgen_test]
async fn a_confirmation_above_the_threshold_says_it_asks_for_approval() {
    let mut view = payment(10_000, "usd", true);
    let usd = view.amount.currency;
    view.viewer = Viewer {
        agent: "june".into(),
        approval_above: Some(Money::new(5_000, usd)),
        ..Viewer::default()
    };
    // Just above the threshold it asks; at it, it refunds.
    let confirms = |view: shared::api::PaymentView, above: &'static str, at: &'static str| async move {
        for (typed, asks) in [(above, true), (at, false)] {
            let (submit, _) = counting_submit(None);
            let panel = mount_panel(view.clone(), Locale::En, submit);
            panel.review_partial(typed).await;
            let refund = format!("Refund ${typed} to Visa •••• 4242");
            let expected = match asks {
                true => format!(
                    "{refund}: after a second agent approves it. Confirming sends the request."
                ),
                false => refund,
            };
            assert_eq!(panel.text(CONFIRM_TEXT), expected);
        }
    };
    confirms(view.clone(), "50.01", "50.00").await;
    // June already refunded $30.00 of this payment herself (another agent's $10.00 is not
    // hers): $20.01 more takes her above the threshold, as the proxy counts it.
    for (agent, amount) in [("june", 3_000), ("sam", 1_000)] {
        let mut mine = refund(Money::new(amount, usd), RefundState::Accepted, false);
        mine.agent = Some(agent.into());
        view.refunds.push(mine);
    }
    confirms(view, "20.01", "20.00").await;
}

#[wasm_bindgen_test]
async fn an_approver_approves_another_agents_request_once() {
    let (panel, decisions, request) =
        panel_of("sam", true, RefundState::InProgress, Locale::En).await;
    assert_eq!(panel.text(REFUND_STATE), "Awaiting approval");
    // Rejecting needs a note first.
    assert!(panel.attr(REJECT, "disabled").is_some());
    panel.type_text(APPROVAL_NOTE, "checked the order");
    panel.click(APPROVE);
    panel.click(APPROVE);
    settle().await;
    assert_eq!(
        *decisions.borrow(),
        vec![(
            request.attempt_id.clone().unwrap(),
            true,
            Some("checked the order".to_owned())
        )],
        "one decision, with the note"
    );
    // The answer replaces the request in place; nothing is offered any more.
    assert_eq!(panel.text(REFUND_STATE), "In progress");
    assert!(panel.find(APPROVE).is_none());
}

#[wasm_bindgen_test]
async fn a_rejection_carries_its_note() {
    let (panel, decisions, _) = panel_of("sam", true, RefundState::Failed, Locale::Ru).await;
    panel.click(REJECT);
    settle().await;
    assert!(decisions.borrow().is_empty(), "no rejection without a note");
    panel.type_text(APPROVAL_NOTE, "нет подтверждения возврата");
    settle().await;
    panel.click(REJECT);
    settle().await;
    let decided = decisions.borrow();
    assert_eq!(decided.len(), 1);
    assert!(!decided[0].1, "a rejection");
    assert_eq!(decided[0].2.as_deref(), Some("нет подтверждения возврата"));
}

/// A note pasted with control characters nobody sees (an escape, a vertical tab) is sent
/// without them: the proxy refuses such a note, and the buttons used to do nothing.
#[wasm_bindgen_test]
async fn a_rejection_note_pasted_with_control_characters_is_sent_without_them() {
    let (panel, decisions, _) = panel_of("sam", true, RefundState::Failed, Locale::En).await;
    panel.type_text(APPROVAL_NOTE, "\u{1b}no proof\u{b} of delivery\u{0}");
    settle().await;
    panel.click(REJECT);
    settle().await;
    let decided = decisions.borrow();
    assert_eq!(decided.len(), 1, "the rejection was sent");
    assert_eq!(decided[0].2.as_deref(), Some("no proof of delivery"));
}

/// A rejection is said as what it is: nothing was sent (not "submitted: failed").
#[wasm_bindgen_test]
async fn a_rejection_is_said_as_nothing_sent() {
    for (locale, said) in [
        (
            Locale::En,
            "Request for a refund of $80.00 rejected: nothing was sent.",
        ),
        (
            Locale::Ru,
            "Запрос на возврат 80,00\u{a0}$ отклонён: ничего не отправлено.",
        ),
    ] {
        let (view, request) = june_asks_of("sam", true);
        let rejected = shared::api::RefundView {
            state: RefundState::Failed,
            error_code: Some(shared::api::ErrorCode::ApprovalRejected),
            ..request
        };
        let decide: Decide = Rc::new(move |_, _, _| {
            let rejected = rejected.clone();
            Box::pin(async move { Ok((rejected, Submitted::Created)) })
        });
        let (submit, _) = counting_submit(None);
        let panel = mount_deciding_panel(view, locale, submit, decide);
        settle().await;
        panel.type_text(APPROVAL_NOTE, "no proof of return");
        settle().await;
        panel.click(REJECT);
        settle().await;
        assert_eq!(panel.text(STATUS_LIVE), said);
    }
}

#[wasm_bindgen_test]
async fn nobody_is_offered_a_decision_on_their_own_request_or_without_the_right() {
    for (agent, can_approve) in [("june", true), ("sam", false)] {
        let (panel, _, _) = panel_of(agent, can_approve, RefundState::InProgress, Locale::En).await;
        assert_eq!(panel.text(REFUND_STATE), "Awaiting approval", "{agent}");
        assert!(panel.find(APPROVE).is_none(), "{agent} is offered Approve");
        assert!(panel.find(REJECT).is_none(), "{agent} is offered Reject");
    }
}
