//! The demo page (`index.html`, served from `dist/` by the `demo-project` proxy) as the agent
//! uses it: a payments table from the sandbox, "Refund…" on a row mounts the widget for it.

use std::time::Instant;

use fantoccini::Locator;
use serde_json::Value;

use crate::widget::{Widget, WAIT};
use crate::{BoxError, Ctx, Stack};

/// Opens the demo page pointed at `stack` (plus `extra_query`, e.g. `lang=ru`) and waits for
/// its payments table.
pub async fn open(ctx: &Ctx, stack: &Stack, extra_query: &str) -> Result<(), BoxError> {
    ctx.client.goto(&stack.demo_page_url(extra_query)).await?;
    let start = Instant::now();
    loop {
        let rows = ctx
            .client
            .find_all(Locator::Css("[data-testid=payment-row]"))
            .await?;
        if !rows.is_empty() {
            return Ok(());
        }
        if start.elapsed() > WAIT {
            let status = ctx
                .client
                .find(Locator::Id("payments-status"))
                .await?
                .text()
                .await
                .unwrap_or_default();
            return Err(
                format!("the demo page listed no payments within {WAIT:?}: {status:?}").into(),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Clicks "Refund…" on the row of `session` and waits until the widget shows the payment.
pub async fn select(ctx: &Ctx, session: &str) -> Result<Widget, BoxError> {
    let button = format!(
        "[data-testid=payment-row][data-session=\"{session}\"] [data-testid=select-payment]"
    );
    let button = ctx
        .client
        .find(Locator::Css(&button))
        .await
        .map_err(|e| format!("the demo page has no row for {session}: {e}"))?;
    crate::widget::click_centred(&ctx.client, button).await?;
    let widget = Widget::new(&ctx.client, session);
    widget.wait_loaded().await?;
    Ok(widget)
}

/// [`open`] then [`select`]: the widget of `session`, ready.
pub async fn widget_for(
    ctx: &Ctx,
    stack: &Stack,
    session: &str,
    extra_query: &str,
) -> Result<Widget, BoxError> {
    open(ctx, stack, extra_query).await?;
    select(ctx, session).await
}

/// Marks the page, so a test can tell afterwards that it was never reloaded.
pub async fn mark_page(ctx: &Ctx) -> Result<(), BoxError> {
    ctx.client
        .execute("window.__e2eMark = 'still-here';", vec![])
        .await?;
    Ok(())
}

pub async fn page_was_reloaded(ctx: &Ctx) -> Result<bool, BoxError> {
    let mark = ctx
        .client
        .execute("return window.__e2eMark || null;", vec![])
        .await?;
    Ok(mark != Value::String("still-here".into()))
}
