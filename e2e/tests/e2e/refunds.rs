//! Scenarios 1, 2 and 4: full and partial refunds, and a project with partial refunds off.

use e2e::{demo, money, testid, TestResult};
use shared::Locale;

#[test]
fn a_full_usd_refund_shows_in_progress_then_accepted_without_a_reload() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let widget = demo::widget_for(&ctx, stack, "ps_usd_1001", "").await?;
        let full = e2e::shown(&money("100.00", "usd"), Locale::En);
        assert_eq!(widget.text(testid::PAYMENT_AMOUNT).await?, full);

        demo::mark_page(&ctx).await?;
        widget.record_states().await?;
        widget.open_confirmation(None).await?;
        let confirmation = widget.text(testid::CONFIRM_TEXT).await?;
        assert!(
            confirmation.contains(&full),
            "the confirmation names the amount: {confirmation:?}"
        );
        widget.click(testid::CONFIRM_BUTTON).await?;
        widget.wait_refund_state("accepted").await?;

        let (in_order, states) = widget.showed_in_order("in_progress", "accepted").await?;
        assert!(
            in_order,
            "the refund showed in progress, then accepted: {states:?}"
        );
        assert!(
            !demo::page_was_reloaded(&ctx).await?,
            "the page was reloaded"
        );
        assert!(
            widget.is_present(testid::NOT_REFUNDABLE).await?,
            "nothing is left to refund"
        );

        let refunds = stack.sandbox_refunds("ps_usd_1001").await?;
        assert_eq!(stack.refunds_received("ps_usd_1001").await?, 1);
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].amount_details.amount, 10_000);
        Ok(())
    });
}

/// Types `typed` as a partial refund of `session` and checks the remaining amount after it.
async fn partial_refund(
    ctx: e2e::Ctx,
    session: &str,
    typed: &str,
    refunded: u64,
    remaining: shared::Money,
) -> TestResult {
    let stack = ctx.stack().await;
    let widget = demo::widget_for(&ctx, stack, session, "").await?;

    widget.refund(Some(typed)).await?;
    widget.wait_refund_state("accepted").await?;

    let expected = e2e::shown(&remaining, Locale::En);
    widget
        .wait_text(testid::REMAINING, &format!("{expected:?} remaining"), |t| {
            t.contains(&expected)
        })
        .await?;
    let row = widget.text(testid::REFUND_AMOUNT).await?;
    assert_eq!(
        row,
        e2e::shown(
            &shared::Money::new(refunded, remaining.currency),
            Locale::En
        )
    );

    assert_eq!(stack.refunds_received(session).await?, 1);
    let refunds = stack.sandbox_refunds(session).await?;
    assert_eq!(
        refunds
            .iter()
            .map(|r| r.amount_details.amount)
            .collect::<Vec<_>>(),
        vec![refunded]
    );
    Ok(())
}

#[test]
fn a_partial_jpy_refund_typed_without_decimals_updates_the_remaining_amount() {
    e2e::run(|ctx| async move {
        // ¥12,000 paid; the agent types 1,500 the way it is written in English.
        partial_refund(ctx, "ps_jpy_1004", "1,500", 1_500, money("10500", "jpy")).await
    });
}

#[test]
fn a_partial_kwd_refund_typed_with_three_decimals_updates_the_remaining_amount() {
    e2e::run(|ctx| async move {
        // KWD 12.500 paid; the agent refunds 2.125.
        partial_refund(ctx, "ps_kwd_1005", "2.125", 2_125, money("10.375", "kwd")).await
    });
}

#[test]
fn a_project_without_partial_refunds_offers_only_the_full_refund() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let widget = demo::widget_for(&ctx, stack, "ps_full_only_1008", "").await?;

        assert!(
            widget.is_present(testid::MODE_FULL).await?,
            "full refund is offered"
        );
        assert!(
            !widget.is_present(testid::MODE_PARTIAL).await?,
            "partial refund is not offered"
        );
        assert!(
            !widget.is_present(testid::AMOUNT_INPUT).await?,
            "there is no amount to type"
        );

        widget.refund(None).await?;
        widget.wait_refund_state("accepted").await?;

        assert_eq!(stack.refunds_received("ps_full_only_1008").await?, 1);
        let refunds = stack.sandbox_refunds("ps_full_only_1008").await?;
        assert_eq!(
            refunds
                .iter()
                .map(|r| r.amount_details.amount)
                .collect::<Vec<_>>(),
            vec![5_000]
        );
        assert_eq!(
            stack.session("ps_full_only_1008").await?.project,
            "demo-full-only"
        );
        Ok(())
    });
}
