//! Scenario 9: in Russian, the labels are Russian and amounts are written the Russian way.

use e2e::{demo, money, testid};
use shared::Locale;

#[test]
fn in_russian_the_labels_and_amounts_are_russian_formatted() {
    e2e::run(|ctx| async move {
        let stack = ctx.stack().await;
        let session = stack
            .create_payment("demo-project", "15000.00", "rub")
            .await?;
        let widget = demo::widget_for(&ctx, stack, session.as_str(), "lang=ru").await?;

        let paid = e2e::shown(&money("15000.00", "rub"), Locale::Ru);
        assert!(
            paid.contains(",00"),
            "a Russian amount has a decimal comma: {paid:?}"
        );
        assert_eq!(widget.text(testid::PAYMENT_AMOUNT).await?, paid);
        assert_eq!(
            widget.text(testid::REVIEW_BUTTON).await?,
            "Проверить возврат…"
        );
        let full_label = widget.find(testid::MODE_FULL).await?;
        let label = ctx
            .client
            .execute(
                "return arguments[0].closest('label').textContent;",
                vec![serde_json::to_value(&full_label)?],
            )
            .await?;
        assert!(
            label
                .as_str()
                .unwrap_or_default()
                .contains("Полный возврат"),
            "{label}"
        );

        // Typed the Russian way: space-grouped thousands and a decimal comma.
        widget.refund(Some("1 500,50")).await?;
        widget.wait_refund_state("accepted").await?;
        let states = widget.texts(testid::REFUND_STATE).await?;
        assert_eq!(states, vec!["Принят".to_owned()]);
        assert_eq!(
            widget.text(testid::REFUND_AMOUNT).await?,
            e2e::shown(&money("1500.50", "rub"), Locale::Ru)
        );
        let remaining = e2e::shown(&money("13499.50", "rub"), Locale::Ru);
        widget
            .wait_text(testid::REMAINING, "the Russian remaining amount", |t| {
                t.contains(&remaining)
            })
            .await?;

        let refunds = stack.sandbox_refunds(session.as_str()).await?;
        assert_eq!(
            refunds
                .iter()
                .map(|r| r.amount_details.amount)
                .collect::<Vec<_>>(),
            vec![150_050]
        );
        assert_eq!(stack.refunds_received(session.as_str()).await?, 1);
        Ok(())
    });
}
