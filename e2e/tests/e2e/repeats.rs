//! Scenario 5: an impatient agent double-clicks or hammers Enter; one refund is made.

use std::time::Duration;

use e2e::widget::press;
use e2e::{demo, testid};
use fantoccini::key::Key;

#[test]
fn a_double_click_on_confirm_makes_exactly_one_refund() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "40.00", "usd").await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;

        widget.open_confirmation(None).await?;
        widget.double_click(testid::CONFIRM_BUTTON).await?;
        widget.wait_refund_state("accepted").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;

        assert_eq!(
            widget.all(testid::REFUND_ROW).await?.len(),
            1,
            "the widget shows one refund"
        );
        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}

#[test]
fn enter_pressed_again_and_again_on_confirm_makes_exactly_one_refund() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "40.00", "usd").await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;

        widget.open_confirmation(None).await?;
        assert!(
            widget.has_focus(testid::CONFIRM_BUTTON).await?,
            "the confirmation takes the focus"
        );
        press(&ctx.client, &[Key::Enter; 8]).await?;
        widget.wait_refund_state("accepted").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;

        assert_eq!(
            widget.all(testid::REFUND_ROW).await?.len(),
            1,
            "the widget shows one refund"
        );
        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}
