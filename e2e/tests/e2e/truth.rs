//! Scenarios 12a–i: what the agent sees of the payment is true — its state as refunds settle,
//! a chargeback as a dispute, a decline with its reason and a fresh retry, an auditable
//! history, both demo projects from one page, touch sizes, locale money and focus.

use std::time::Duration;

use e2e::axe::assert_no_serious_violations;
use e2e::widget::focused;
use e2e::{demo, testid, BoxError, Ctx, Widget};
use sandbox::{Fault, FaultRequest, FaultRoute};

/// Records every text the payment's status badge shows (a `MutationObserver` in the page),
/// so a state that lasts a few hundred milliseconds is not missed between two polls.
async fn record_payment_states(ctx: &Ctx, widget: &Widget) -> Result<(), BoxError> {
    let script = r#"
        const root = document.querySelector(arguments[0]);
        const seen = window.__e2ePaymentStates = [];
        const note = () => {
            const badge = root.querySelector('[data-testid="payment-status"]');
            const text = badge ? badge.textContent.trim() : '';
            if (text && seen[seen.length - 1] !== text) seen.push(text);
        };
        note();
        new MutationObserver(note).observe(root, { subtree: true, childList: true, characterData: true });
    "#;
    ctx.client
        .execute(script, vec![widget.root_selector().into()])
        .await?;
    Ok(())
}

async fn recorded_payment_states(ctx: &Ctx) -> Result<Vec<String>, BoxError> {
    let value = ctx
        .client
        .execute("return window.__e2ePaymentStates || [];", vec![])
        .await?;
    Ok(serde_json::from_value(value)?)
}

/// Whether focus is inside the widget (its host element included), not on `<body>`.
async fn focus_is_inside(ctx: &Ctx, widget: &Widget) -> Result<bool, BoxError> {
    let script = "const root = document.querySelector(arguments[0]); \
                  return !!root && root.contains(document.activeElement);";
    let inside = ctx
        .client
        .execute(script, vec![widget.root_selector().into()])
        .await?;
    Ok(inside.as_bool().unwrap_or(false))
}

#[test]
fn a_full_refund_shows_refund_pending_then_refunded_and_focus_lands_on_the_result() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack
            .create_payment("demo-project", "100.00", "usd")
            .await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        assert_eq!(widget.text(testid::PAYMENT_STATUS).await?, "Succeeded");
        assert_eq!(widget.text(testid::TITLE).await?, "Refund payment");

        record_payment_states(&ctx, &widget).await?;
        widget.refund(None).await?;
        widget.wait_refund_state("accepted").await?;
        widget
            .wait_text(testid::PAYMENT_STATUS, "Refunded", |t| t == "Refunded")
            .await?;

        let states = recorded_payment_states(&ctx).await?;
        assert_eq!(
            states,
            vec!["Succeeded", "Refund pending", "Refunded"],
            "refunded only once the refund settled"
        );
        assert_eq!(widget.text(testid::TITLE).await?, "Payment refunded");
        assert_eq!(
            widget.text(testid::NOT_REFUNDABLE).await?,
            "This payment has been fully refunded."
        );
        // (h) The form is gone; focus is on the result, not on <body>.
        assert!(
            widget.has_focus(testid::STATUS_LIVE).await?,
            "focus is on {}",
            focused(&ctx.client).await?
        );
        assert_no_serious_violations(&ctx.client, widget.root_selector(), "when refunded").await?;
        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}

#[test]
fn a_chargeback_shows_a_dispute_no_refund_form_and_no_refund_row() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "80.00", "usd").await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        assert!(!widget.is_present(testid::DISPUTE_AMOUNT).await?);

        stack.chargeback(session.as_str(), Some(2_000)).await?;

        widget
            .wait_text(testid::PAYMENT_STATUS, "Disputed", |t| t == "Disputed")
            .await?;
        assert_eq!(widget.text(testid::DISPUTE_AMOUNT).await?, "$20.00");
        assert_eq!(widget.text(testid::TITLE).await?, "Payment disputed");
        assert!(
            !widget.is_present(testid::REFUND_ROW).await?,
            "a chargeback is no refund"
        );
        assert!(
            !widget.is_present(testid::REVIEW_BUTTON).await?,
            "no refund form"
        );
        let live = widget.text(testid::STATUS_LIVE).await?;
        assert!(live.starts_with("Chargeback received"), "{live}");
        assert!(!live.contains("Refund"), "{live}");
        let reason = widget.text(testid::NOT_REFUNDABLE).await?;
        assert!(reason.contains("disputed"), "{reason}");
        assert_no_serious_violations(&ctx.client, widget.root_selector(), "when disputed").await?;

        let refunds = stack.sandbox_refunds(session.as_str()).await?;
        assert_eq!(refunds.len(), 1);
        assert!(refunds[0].is_chargeback);
        assert_eq!(stack.refunds_received(session.as_str()).await?, 0);
        Ok(())
    });
}

#[test]
fn a_decline_is_explained_once_and_a_new_confirmation_reaches_the_sandbox_again() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        stack.clear_faults().await?;
        let session = stack.create_payment("demo-project", "50.00", "usd").await?;
        let id = session.as_str();
        let widget = demo::widget_for(&ctx, stack, id, "").await?;

        stack
            .inject(FaultRequest::new(Fault::Decline).on(FaultRoute::Refund))
            .await?;
        widget.refund(None).await?;
        let error = widget
            .wait_text(testid::FORM_ERROR, "the provider's reason", |t| {
                t.contains("declined")
            })
            .await?;
        assert!(error.contains("refund_declined"), "{error}");
        assert!(error.contains("try again"), "a next step: {error}");
        assert!(
            !widget.text(testid::STATUS_LIVE).await?.contains("declined"),
            "the reason is shown once"
        );
        assert!(
            !widget.is_present(testid::CONFIRM_DIALOG).await?,
            "back to the form: the declined key is spent"
        );
        widget.wait_refund_state("failed").await?;
        assert_no_serious_violations(&ctx.client, widget.root_selector(), "after a decline")
            .await?;
        assert_eq!(stack.refunds_received(id).await?, 0);

        // A new Review → Confirm is a new intent with a new key: it reaches the sandbox.
        widget.refund(None).await?;
        widget.wait_refund_state("accepted").await?;
        assert_eq!(
            stack.refunds_received(id).await?,
            1,
            "counted at the sandbox"
        );
        assert_eq!(
            widget.texts(testid::REFUND_STATE).await?,
            vec!["Failed".to_owned(), "Accepted".to_owned()]
        );

        // (i) After a reload the declined attempt is still listed, with its reason.
        let widget = demo::widget_for(&ctx, stack, id, "").await?;
        assert_eq!(
            widget.texts(testid::REFUND_STATE).await?,
            vec!["Failed".to_owned(), "Accepted".to_owned()]
        );
        let failure = widget.text(testid::REFUND_FAILURE).await?;
        assert!(failure.contains("refused"), "{failure}");
        Ok(())
    });
}

#[test]
fn history_rows_and_the_confirmation_tell_reason_note_agent_and_refund_id() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        stack.clear_faults().await?;
        let session = stack.create_payment("demo-project", "50.00", "usd").await?;
        let id = session.as_str();
        let widget = demo::widget_for(&ctx, stack, id, "").await?;

        // The partial amount starts as what remains, selected.
        widget.click(testid::MODE_PARTIAL).await?;
        assert_eq!(widget.value(testid::AMOUNT_INPUT).await?, "50.00");
        widget.type_into(testid::AMOUNT_INPUT, "$30").await?;
        let reason = widget.find(testid::REASON_SELECT).await?;
        reason.select_by_value("duplicate").await?;
        widget
            .type_into(testid::NOTE_INPUT, "Charged twice for order 1234")
            .await?;
        widget.click(testid::REVIEW_BUTTON).await?;
        widget.find(testid::CONFIRM_DIALOG).await?;
        assert_eq!(
            widget.text(testid::CONFIRM_REASON).await?,
            "Reason: Duplicate payment"
        );
        assert_eq!(
            widget.text(testid::CONFIRM_REMAINING).await?,
            "Remaining refundable after this refund: $20.00"
        );

        // No webhook: the refund stays pending, and the summary says so apart.
        stack.inject(Fault::NoWebhook).await?;
        widget.click(testid::CONFIRM_BUTTON).await?;
        widget.wait_refund_state("in_progress").await?;
        widget
            .wait_text(testid::PAYMENT_PENDING, "$30.00 pending", |t| t == "$30.00")
            .await?;
        assert_eq!(widget.text(testid::REMAINING).await?, "$20.00");
        assert_eq!(widget.text(testid::PAYMENT_STATUS).await?, "Refund pending");

        for when in ["live", "after a reload"] {
            let widget = if when == "live" {
                Widget::new(&ctx.client, id)
            } else {
                demo::widget_for(&ctx, stack, id, "").await?
            };
            widget
                .wait_text(testid::REFUND_ID, "a refund id", |t| !t.is_empty())
                .await?;
            assert_eq!(
                widget.text(testid::REFUND_REASON).await?,
                "Duplicate payment",
                "{when}"
            );
            assert_eq!(
                widget.text(testid::REFUND_NOTE).await?,
                "Charged twice for order 1234",
                "{when}"
            );
            let agent = widget.text(testid::REFUND_AGENT).await?;
            assert!(agent.contains("ada@acme.example"), "{when}: {agent}");
        }
        let refunds = stack.sandbox_refunds(id).await?;
        assert_eq!(refunds.len(), 1);
        let widget = Widget::new(&ctx.client, id);
        assert_eq!(
            widget.text(testid::REFUND_ID).await?,
            refunds[0].id.to_string()
        );
        Ok(())
    });
}

#[test]
fn the_full_only_project_refunds_from_the_demo_page() {
    e2e::run(|ctx| async move {
        // The demo's own configs: the page on :8080 may call the full-only proxy.
        let root = e2e::workspace_root();
        let page = proxy::config::Settings::from_file(&root.join("demo/proxy.toml"))?;
        let full_only =
            proxy::config::Settings::from_file(&root.join("demo/proxy-full-only.toml"))?;
        let page_origin = format!(
            "http://{}",
            page.listen.ok_or("demo/proxy.toml: no listen")?
        );
        assert!(
            full_only
                .allowed_origins
                .unwrap_or_default()
                .contains(&page_origin),
            "demo/proxy-full-only.toml must allow {page_origin}"
        );

        let stack = ctx.stack().await;
        stack.clear_faults().await?;
        let session = stack
            .create_payment("demo-full-only", "30.00", "usd")
            .await?;
        // At 1280 px the payments table fits beside the widget, without scrolling sideways.
        let before = ctx.client.get_window_rect().await?;
        ctx.client.set_window_size(1280, 900).await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        let script = "const s = document.querySelector('.table-scroll'); \
                          return [s.scrollWidth, s.clientWidth];";
        let widths = ctx.client.execute(script, vec![]).await?;
        ctx.client
            .set_window_size(before.2 as u32, before.3 as u32)
            .await?;
        assert!(
            widths[0].as_f64() <= widths[1].as_f64(),
            "the payments table scrolls sideways at 1280 px: {widths}"
        );
        assert!(!widget.is_present(testid::MODE_PARTIAL).await?);
        widget.refund(None).await?;
        widget.wait_refund_state("accepted").await?;
        widget
            .wait_text(testid::PAYMENT_STATUS, "Refunded", |t| t == "Refunded")
            .await?;
        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}

#[test]
fn on_a_phone_every_control_is_44px_and_the_widget_opens_in_view_with_focus() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "25.00", "usd").await?;
        let before = ctx.client.get_window_rect().await?;
        ctx.client.set_window_size(390, 844).await?;
        let outcome = async {
                let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
                assert!(
                    focus_is_inside(&ctx, &widget).await?,
                    "focus moved into the widget; it is on {}",
                    focused(&ctx.client).await?
                );
                let script = "const r = document.querySelector(arguments[0]).getBoundingClientRect(); \
                              return r.top < window.innerHeight && r.bottom > 0;";
                let in_view = ctx
                    .client
                    .execute(script, vec![widget.root_selector().into()])
                    .await?;
                assert_eq!(in_view, serde_json::Value::Bool(true), "the widget is in view");

                // Below 700 px the payments table is one card per payment: nothing scrolls
                // sideways, every cell is on its own line, and each fact says what it is.
                let script = r#"
                    const scroll = document.querySelector('.table-scroll');
                    const rows = [...document.querySelectorAll('[data-testid="payments-table"] tbody tr')];
                    const cells = rows.flatMap(r => [...r.querySelectorAll('td')]);
                    const unlabelled = cells.filter(td => td.textContent.trim() && !td.dataset.label
                        && !td.querySelector('button'));
                    const tooWide = cells.filter(td => td.getBoundingClientRect().right > window.innerWidth + 1);
                    return {
                        overflows: scroll.scrollWidth > scroll.clientWidth,
                        rows: rows.length,
                        cards: rows.filter(r => getComputedStyle(r).display === 'block').length,
                        cells_in_line: cells.filter(td => getComputedStyle(td).display !== 'block').length,
                        unlabelled: unlabelled.length,
                        too_wide: tooWide.length,
                    };
                "#;
                let layout = ctx.client.execute(script, vec![]).await?;
                assert!(layout["rows"].as_u64() > Some(0), "{layout}");
                assert_eq!(layout["cards"], layout["rows"], "every payment is a card: {layout}");
                assert_eq!(layout["overflows"], false, "nothing scrolls sideways: {layout}");
                assert_eq!(layout["cells_in_line"], 0, "{layout}");
                assert_eq!(layout["unlabelled"], 0, "each fact is labelled: {layout}");
                assert_eq!(layout["too_wide"], 0, "no cell leaves the screen: {layout}");

                widget.click(testid::MODE_PARTIAL).await?;
                let script = r#"
                    const root = document.querySelector(arguments[0]);
                    const small = [];
                    for (const el of root.querySelectorAll('button, select, input, textarea, summary')) {
                        if (!el.offsetParent) continue;
                        // A radio's touch target is its whole label.
                        const target = el.type === 'radio' ? el.closest('label') : el;
                        const r = target.getBoundingClientRect();
                        if (r.height < 44) small.push(`${el.dataset.testid || el.tagName}: ${r.height}`);
                    }
                    return small;
                "#;
                let small = ctx
                    .client
                    .execute(script, vec![widget.root_selector().into()])
                    .await?;
                assert_eq!(small, serde_json::json!([]), "controls under 44 px");
                Ok::<_, BoxError>(())
            }
            .await;
        ctx.client
            .set_window_size(before.2 as u32, before.3 as u32)
            .await?;
        outcome
    });
}

#[test]
fn english_writes_dollars_first_and_russian_after() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack
            .create_payment("demo-project", "100.00", "usd")
            .await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        assert_eq!(widget.text(testid::PAYMENT_AMOUNT).await?, "$100.00");
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "lang=ru").await?;
        assert_eq!(widget.text(testid::PAYMENT_AMOUNT).await?, "100,00 $");
        Ok(())
    });
}

#[test]
#[ignore = "writes docs/disputed.png for the README; run with `cargo test -p e2e -- --ignored readme`"]
fn readme_screenshot_of_a_disputed_payment() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack.create_payment("demo-project", "64.90", "eur").await?;
        ctx.client.set_window_size(1280, 900).await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "").await?;
        stack.chargeback(session.as_str(), None).await?;
        widget
            .wait_text(testid::PAYMENT_STATUS, "Disputed", |t| t == "Disputed")
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = ctx.client.screenshot().await?;
        std::fs::write(e2e::workspace_root().join("docs/disputed.png"), png)?;
        Ok(())
    });
}
