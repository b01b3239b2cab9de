//! Scenario 8: a chargeback arrives by webhook and shows on the open payment, marked as such.

use e2e::{demo, money, testid};
use shared::Locale;

#[test]
fn a_chargeback_webhook_appears_on_the_payment_marked_as_a_chargeback() {
    e2e::run(
        "a_chargeback_webhook_appears_on_the_payment_marked_as_a_chargeback",
        |ctx| async move {
            let stack = ctx.stack().await;
            let session = stack.create_payment("demo-project", "80.00", "usd").await?;
            let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
            assert!(!widget.is_present(testid::CHARGEBACK_BADGE).await?);

            stack.chargeback(session.as_str(), Some(2_000)).await?;

            widget.find(testid::CHARGEBACK_BADGE).await?;
            let amount = widget.text(testid::REFUND_AMOUNT).await?;
            assert_eq!(amount, e2e::shown(&money("20.00", "usd"), Locale::En));
            let remaining = e2e::shown(&money("60.00", "usd"), Locale::En);
            widget
                .wait_text(testid::REMAINING, "60.00 remaining", |t| {
                    t.contains(&remaining)
                })
                .await?;

            let refunds = stack.sandbox_refunds(session.as_str()).await?;
            assert_eq!(refunds.len(), 1);
            assert!(
                refunds[0].is_chargeback,
                "the sandbox holds a chargeback: {:?}",
                refunds[0]
            );
            assert_eq!(
                stack.refunds_received(session.as_str()).await?,
                0,
                "no refund was asked for"
            );
            Ok(())
        },
    );
}
