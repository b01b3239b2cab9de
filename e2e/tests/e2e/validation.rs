//! Scenario 3: amounts the agent gets wrong are explained inline and never reach the sandbox.

use e2e::{demo, testid};

#[test]
fn wrong_amounts_get_inline_errors_and_the_sandbox_receives_nothing() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "5000", "jpy").await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        widget.click(testid::MODE_PARTIAL).await?;

        for (typed, what, says) in [
            (
                "6000",
                "above the remaining amount",
                "more than what remains",
            ),
            ("1.5", "decimals in a currency without them", "decimal"),
            ("", "an empty amount", "Enter an amount"),
        ] {
            widget.type_into(testid::AMOUNT_INPUT, typed).await?;
            widget.click(testid::REVIEW_BUTTON).await?;
            let error = widget
                .wait_text(testid::AMOUNT_ERROR, &format!("an error for {what}"), |t| {
                    t.contains(says)
                })
                .await?;
            let input = widget.find(testid::AMOUNT_INPUT).await?;
            assert_eq!(
                input.attr("aria-invalid").await?.as_deref(),
                Some("true"),
                "{what}: {error}"
            );
            assert!(
                !widget.is_present(testid::CONFIRM_DIALOG).await?,
                "{what} opened the confirmation"
            );
        }

        assert_eq!(stack.refunds_received(session.as_str()).await?, 0);
        Ok(())
    });
}
