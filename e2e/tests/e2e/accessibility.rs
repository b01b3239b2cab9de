//! Scenario 11: axe-core finds no serious or critical violation in any state of the widget.

use e2e::axe::assert_no_serious_violations;
use e2e::{demo, testid};

#[test]
fn axe_finds_no_serious_violation_in_any_state_of_the_widget() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "70.00", "usd").await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        let root = widget.root_selector().to_owned();
        let client = &ctx.client;

        assert_no_serious_violations(client, &root, "with the payment loaded").await?;

        widget.click(testid::MODE_PARTIAL).await?;
        widget.type_into(testid::AMOUNT_INPUT, "999").await?;
        widget.click(testid::REVIEW_BUTTON).await?;
        widget
            .wait_text(testid::AMOUNT_ERROR, "an amount error", |t| {
                !t.trim().is_empty()
            })
            .await?;
        assert_no_serious_violations(client, &root, "with an amount error").await?;

        widget.type_into(testid::AMOUNT_INPUT, "10.00").await?;
        widget.click(testid::REVIEW_BUTTON).await?;
        widget.find(testid::CONFIRM_DIALOG).await?;
        assert_no_serious_violations(client, &root, "with the confirmation open").await?;

        widget.click(testid::CONFIRM_BUTTON).await?;
        widget.wait_refund_state("accepted").await?;
        assert_no_serious_violations(client, &root, "after the refund").await?;

        let full_only = demo::widget_for(&ctx, stack, "ps_full_only_1008", "").await?;
        assert_no_serious_violations(
            client,
            full_only.root_selector(),
            "with partial refunds off",
        )
        .await?;

        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}

#[test]
#[ignore = "writes docs/demo.png for the README; run with `cargo test -p e2e -- --ignored readme`"]
fn readme_screenshot_of_the_demo_page_with_a_refund_in_progress() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack
            .create_payment("demo-project", "120.00", "usd")
            .await?;
        // No webhook: the refund stays "in progress" long enough to be photographed.
        stack.inject(sandbox::Fault::NoWebhook).await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        widget.refund(Some("45.00")).await?;
        widget.wait_refund_state("in_progress").await?;
        // The width the payments table is made to fit beside the widget.
        ctx.client.set_window_size(1280, 900).await?;
        let png = ctx.client.screenshot().await?;
        std::fs::write(e2e::workspace_root().join("docs/demo.png"), png)?;
        Ok(())
    });
}
