//! Scenario 10: the whole refund with Tab, Space and Enter only.

use e2e::widget::{focused, press};
use e2e::{demo, testid, Widget};
use fantoccini::key::Key;
use fantoccini::Client;

/// Presses Tab until the widget's `target` has focus (at most `limit` times).
async fn tab_to(client: &Client, widget: &Widget, target: &str, limit: usize) -> e2e::TestResult {
    for _ in 0..limit {
        if widget.has_focus(target).await? {
            return Ok(());
        }
        press(client, &[Key::Tab]).await?;
    }
    Err(format!(
        "Tab never reached `{target}`; focus is on {}",
        focused(client).await?
    )
    .into())
}

#[test]
fn a_full_refund_can_be_made_with_tab_space_and_enter_only() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "33.00", "usd").await?;
        demo::open(&ctx, stack, "").await?;

        // The agent reaches the payment's "Refund…" button and presses Enter.
        let button = format!(
            "[data-testid=payment-row][data-session=\"{session}\"] [data-testid=select-payment]"
        );
        let select = ctx.client.find(fantoccini::Locator::Css(&button)).await?;
        ctx.client
            .execute(
                "arguments[0].focus();",
                vec![serde_json::to_value(&select)?],
            )
            .await?;
        press(&ctx.client, &[Key::Enter]).await?;
        let widget = Widget::new(&ctx.client, session.as_str());
        widget.wait_loaded().await?;

        tab_to(&ctx.client, &widget, testid::MODE_FULL, 60).await?;
        press(&ctx.client, &[Key::Space]).await?;
        assert_eq!(
            widget
                .find(testid::MODE_FULL)
                .await?
                .prop("checked")
                .await?
                .as_deref(),
            Some("true")
        );

        tab_to(&ctx.client, &widget, testid::REVIEW_BUTTON, 10).await?;
        press(&ctx.client, &[Key::Enter]).await?;
        widget.find(testid::CONFIRM_DIALOG).await?;
        assert!(
            widget.has_focus(testid::CONFIRM_BUTTON).await?,
            "the confirmation takes the focus; it is on {}",
            focused(&ctx.client).await?
        );
        press(&ctx.client, &[Key::Space]).await?;
        widget.wait_refund_state("accepted").await?;

        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}

/// The look-up failed and the agent pressed "Try again" with the keyboard: once the payment is
/// there, the focus is in the widget, not back at the top of the host page.
#[test]
fn after_try_again_the_keyboard_stays_in_the_widget() {
    e2e::run(|ctx| async move {
        use sandbox::{Fault, FaultRequest, FaultRoute};
        let stack = ctx.stack().await;
        stack.clear_faults().await?;
        let session = stack.create_payment("demo-project", "34.00", "usd").await?;
        demo::open(&ctx, stack, "").await?;
        stack
            .inject(
                FaultRequest::new(Fault::Http500)
                    .on(FaultRoute::Status)
                    // Plenty: the shared stack's reconciliation may take some meanwhile.
                    .times(100),
            )
            .await?;
        let button = format!(
            "[data-testid=payment-row][data-session=\"{session}\"] [data-testid=select-payment]"
        );
        let select = ctx.client.find(fantoccini::Locator::Css(&button)).await?;
        e2e::widget::click_centred(&ctx.client, select).await?;
        let widget = Widget::new(&ctx.client, session.as_str());
        let retry = widget.find(testid::RETRY_BUTTON).await?;
        stack.clear_faults().await?;
        ctx.client
            .execute("arguments[0].focus();", vec![serde_json::to_value(&retry)?])
            .await?;
        press(&ctx.client, &[Key::Enter]).await?;
        widget.wait_loaded().await?;
        let start = std::time::Instant::now();
        while !widget.has_focus(testid::WIDGET).await? {
            if start.elapsed() > e2e::widget::WAIT {
                return Err(format!("focus is on {}", focused(&ctx.client).await?).into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // From there, Tab goes on through the widget.
        tab_to(&ctx.client, &widget, testid::REVIEW_BUTTON, 20).await?;
        Ok(())
    });
}
