//! Scenario 7: the agent's token expires mid-way; the widget asks the page for a new one.

use e2e::{demo, testid};

#[test]
fn an_expired_token_is_renewed_through_the_host_page_and_the_refund_goes_through() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "25.00", "usd").await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;

        // The token expires while the agent fills the form; count the widget's requests for a
        // new one (the demo page's own listener answers them).
        let expired = stack.expired_token();
        let script = r#"
            const el = document.querySelector(arguments[0]);
            window.__e2eExpiredEvents = 0;
            el.addEventListener('sg-refund:token-expired', () => window.__e2eExpiredEvents++);
            el.setAttribute('data-token', arguments[1]);
        "#;
        ctx.client
            .execute(
                script,
                vec![widget.root_selector().into(), expired.clone().into()],
            )
            .await?;

        widget.refund(None).await?;
        widget.wait_refund_state("accepted").await?;

        let asked = ctx
            .client
            .execute("return window.__e2eExpiredEvents;", vec![])
            .await?;
        assert!(
            asked.as_u64().unwrap_or(0) >= 1,
            "the widget asked the page for a new token"
        );
        let current = ctx
            .client
            .execute(
                "return document.querySelector(arguments[0]).getAttribute('data-token');",
                vec![widget.root_selector().into()],
            )
            .await?;
        assert_ne!(
            current.as_str(),
            Some(expired.as_str()),
            "the page set a new token"
        );
        assert!(
            !widget.is_present(testid::FORM_ERROR).await?
                || widget.text(testid::FORM_ERROR).await?.trim().is_empty()
        );
        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}
