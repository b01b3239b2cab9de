//! The widget under the proxy's Content-Security-Policy: it loads (wasm), refunds and gets
//! the live update (fetch and the event stream), and the console reports no CSP violation.

use e2e::demo;

#[test]
fn the_widget_works_under_the_csp_with_no_violation_in_the_console() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "25.00", "usd").await?;
        // Earlier scenarios' lines are not this page's.
        let _ = ctx.console_log().await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        widget.open_confirmation(None).await?;
        widget.click(e2e::testid::CONFIRM_BUTTON).await?;
        widget.wait_refund_state("accepted").await?;

        let policy: String = ctx
                .client
                .execute(
                    "return fetch(location.href).then(r => r.headers.get('content-security-policy') || '');",
                    vec![],
                )
                .await?
                .as_str()
                .unwrap_or_default()
                .to_owned();
        assert!(
            policy.contains("'wasm-unsafe-eval'"),
            "the page is served under the CSP: {policy:?}"
        );
        let violations: Vec<String> = ctx
            .console_log()
            .await?
            .into_iter()
            .filter(|line| line.contains("Content Security Policy") || line.contains("Refused to"))
            .collect();
        assert!(violations.is_empty(), "CSP violations: {violations:#?}");
        Ok(())
    });
}
