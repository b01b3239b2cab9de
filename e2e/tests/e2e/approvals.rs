//! Four eyes through the demo page: a junior's refund above the threshold waits; a senior in
//! a second tab approves it; the sandbox receives one refund and both tabs show it live.

use e2e::demo;
use e2e::stack::APPROVAL_CURRENCY;
use e2e::testid;

#[test]
fn a_juniors_refund_above_the_threshold_is_sent_once_a_senior_approves_it_in_another_tab() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack
            .create_payment("demo-project", "100.00", APPROVAL_CURRENCY)
            .await?;
        let id = session.as_str();

        // June (junior) asks for £80.00, over the £50.00 threshold: recorded, nothing sent.
        let june = demo::widget_for(&ctx, stack, id, "agent=june@acme.example").await?;
        let allowance = june.text(testid::ALLOWANCE).await?;
        assert!(allowance.contains("£50.00"), "{allowance}");
        june.refund(Some("80.00")).await?;
        june.wait_refund_state("awaiting_approval").await?;
        assert!(
            !june.is_present(testid::APPROVE).await?,
            "nobody approves their own request"
        );
        assert_eq!(stack.refunds_received(id).await?, 0, "nothing sent yet");
        let june_tab = ctx.client.window().await?;

        // Sam (senior approver) opens the same payment in a second tab and approves.
        let sam_tab = ctx.client.new_window(true).await?;
        ctx.client.switch_to_window(sam_tab.handle.clone()).await?;
        let sam = demo::widget_for(&ctx, stack, id, "agent=sam@acme.example").await?;
        sam.wait_refund_state("awaiting_approval").await?;
        sam.type_into(testid::APPROVAL_NOTE, "order returned")
            .await?;
        // Recorded in the page: `in_progress` lasts only until the webhook (300 ms here).
        sam.record_states().await?;
        sam.click(testid::APPROVE).await?;
        sam.wait_refund_state("accepted").await?;
        let (in_order, states) = sam.showed_in_order("in_progress", "accepted").await?;
        assert!(in_order, "sent on approval, then accepted: {states:?}");

        // One refund of £80.00 reached Smart Glocal.
        let refunds = stack.sandbox_refunds(id).await?;
        assert_eq!(refunds.len(), 1, "{refunds:?}");
        assert_eq!(refunds[0].amount_details.amount, 8_000);
        assert_eq!(stack.refunds_received(id).await?, 1);

        // June's tab followed it live, without a reload.
        ctx.client.close_window().await?;
        ctx.client.switch_to_window(june_tab).await?;
        june.wait_refund_state("accepted").await?;
        assert!(!june.is_present(testid::APPROVE).await?);
        Ok(())
    });
}
