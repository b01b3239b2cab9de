//! Scenario 6: Smart Glocal answers 500, then does not answer in time. The agent reads what
//! happened, the widget never claims a refund it does not have, and no second refund is made.

use std::time::Duration;

use e2e::{demo, testid, Widget};
use sandbox::{Fault, FaultRequest, FaultRoute};

/// Confirms again the way the widget offers it: the same confirmation if still open.
async fn confirm_again(widget: &Widget) -> e2e::TestResult {
    if widget.is_present(testid::CONFIRM_BUTTON).await? {
        widget.click(testid::CONFIRM_BUTTON).await
    } else {
        widget.refund(None).await
    }
}

#[test]
fn an_upstream_500_then_a_timeout_never_show_a_false_success_nor_make_a_second_refund() {
    e2e::run(
        "an_upstream_500_then_a_timeout_never_show_a_false_success_nor_make_a_second_refund",
        |ctx| async move {
            let stack = ctx.stack().await;
            stack.clear_faults().await?;
            let session = stack.create_payment("demo-project", "60.00", "usd").await?;
            let id = session.as_str();
            let widget = demo::widget_for(&ctx, stack, id, "").await?;
            widget.record_states().await?;

            // 1. HTTP 500: nothing was refunded, and the agent is told so.
            stack.inject(FaultRequest::new(Fault::Http500).on(FaultRoute::Refund)).await?;
            widget.refund(None).await?;
            let error = widget.wait_text(testid::FORM_ERROR, "an error after the 500", |t| !t.trim().is_empty()).await?;
            assert!(
                !widget.is_present(testid::REFUND_ROW).await?
                    || widget.texts(testid::REFUND_STATE).await?.iter().all(|s| !s.contains("Accepted")),
                "a refund is shown as done after a 500: {error}"
            );
            assert_eq!(stack.refunds_received(id).await?, 0, "the 500 applied nothing");

            // 2. Timeout: the sandbox takes the refund but the answer never comes back.
            stack.inject(FaultRequest::new(Fault::Timeout).on(FaultRoute::Refund)).await?;
            confirm_again(&widget).await?;
            let status = widget
                .wait_text(testid::STATUS_LIVE, "that the outcome is not confirmed yet", |t| {
                    t.contains("not confirmed") || t.contains("Awaiting")
                })
                .await?;
            assert!(!status.contains("Accepted"), "{status}");

            // The webhook (and reconciliation) settle it, live.
            widget.wait_refund_state("accepted").await?;
            tokio::time::sleep(Duration::from_millis(500)).await;

            let states = widget.recorded_states().await?;
            assert!(
                states.iter().all(|s| !s.contains(',')),
                "the widget never showed two refunds: {states:?}"
            );
            let first_accepted = states.iter().position(|s| s == "accepted").expect("accepted was shown");
            assert!(
                states[..first_accepted].iter().all(|s| s.is_empty() || s == "unknown" || s == "pending" || s == "in_progress"),
                "nothing looked final before the refund settled: {states:?}"
            );
            assert_eq!(stack.refunds_received(id).await?, 1, "exactly one refund reached the sandbox");
            assert!(widget.is_present(testid::NOT_REFUNDABLE).await?, "nothing is left to refund");
            Ok(())
        },
    );
}
