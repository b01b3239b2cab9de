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
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        stack.clear_faults().await?;
        let session = stack.create_payment("demo-project", "60.00", "usd").await?;
        let id = session.as_str();
        let widget = demo::widget_for(&ctx, stack, id, "").await?;
        widget.record_states().await?;

        // 1. HTTP 500. Smart Glocal may or may not have applied it, so the proxy answers
        //    "outcome unknown" and reconciles: the agent reads that it is not confirmed.
        stack
            .inject(FaultRequest::new(Fault::Http500).on(FaultRoute::Refund))
            .await?;
        widget.refund(None).await?;
        widget
            .wait_text(testid::STATUS_LIVE, "what happened after the 500", |t| {
                t.contains("not confirmed") || t.contains("could not")
            })
            .await?;
        // Reconciliation finds nothing upstream: the attempt failed, the full amount is
        // refundable again.
        widget.wait_refund_state("failed").await?;
        widget.find(testid::REVIEW_BUTTON).await?;
        let after_500 = widget.recorded_states().await?;
        assert!(
            after_500
                .iter()
                .all(|s| !s.contains("in_progress") && !s.contains("accepted")),
            "a 500 never looks like a refund under way: {after_500:?}"
        );
        assert_eq!(
            stack.refunds_received(id).await?,
            0,
            "the 500 applied nothing"
        );

        // 2. Timeout: the sandbox takes the refund but its answer never comes back.
        stack
            .inject(FaultRequest::new(Fault::Timeout).on(FaultRoute::Refund))
            .await?;
        confirm_again(&widget).await?;
        widget.wait_refund_state("accepted").await?;
        tokio::time::sleep(Duration::from_millis(800)).await;

        let states = widget.recorded_states().await?;
        let holding_money = |s: &str| {
            s.split(',')
                .filter(|state| *state != "failed" && !state.is_empty())
                .count()
        };
        assert!(
            states.iter().all(|s| holding_money(s) <= 1),
            "the widget never showed two live refunds: {states:?}"
        );
        assert_eq!(
            widget.texts(testid::REFUND_STATE).await?,
            vec!["Failed".to_owned(), "Accepted".to_owned()],
            "the failed attempt, then the accepted refund"
        );
        assert!(
            widget.is_present(testid::NOT_REFUNDABLE).await?,
            "nothing is left to refund"
        );
        assert_eq!(
            stack.refunds_received(id).await?,
            1,
            "exactly one refund reached the sandbox"
        );
        let refunds = stack.sandbox_refunds(id).await?;
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].amount_details.amount, 6_000);
        Ok(())
    });
}
