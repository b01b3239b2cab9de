//! The widget for one payment: loads it, keeps it live through the event stream, and hands it
//! to [`RefundPanel`] with a submitter that talks to the proxy.

use std::rc::Rc;

use leptos::prelude::*;
use shared::api::{PaymentView, RefundEvent};
use shared::Locale;

use crate::api::{Client, EventStream};
use crate::components::{Decide, RefundPanel, Submit};
use crate::dom;
use crate::dom::rx;
use crate::i18n::{self, tr};
use crate::testids;

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Loading,
    Failed(RwSignal<String>),
    Ready(RwSignal<PaymentView>),
}

#[component]
pub fn RefundWidget(
    /// The connection to the proxy for this widget's payment.
    client: Rc<Client>,
    /// Language of everything shown.
    locale: Locale,
) -> impl IntoView {
    let load = RwSignal::new(Load::Loading);
    let status = RwSignal::new(String::new());
    let client = StoredValue::new_local(client);
    let stream = StoredValue::new_local(None::<EventStream>);

    let fetch = move || {
        let client = client.get_value();
        leptos::task::spawn_local(async move {
            match client.payment().await {
                Ok(view) => match load.get_untracked() {
                    // A reload after reconnecting: update in place, keep the form as it is.
                    Load::Ready(payment) => payment.set(view),
                    _ => {
                        load.set(Load::Ready(RwSignal::new(view)));
                    }
                },
                Err(error) => {
                    if !matches!(load.get_untracked(), Load::Ready(_)) {
                        load.set(Load::Failed(RwSignal::new(error.message(locale))));
                    }
                }
            }
        });
    };
    fetch();

    // Once the payment is on screen: mark it for the benchmark, then go live.
    Effect::new(move |started: Option<bool>| {
        let Load::Ready(payment) = load.get() else {
            return started.unwrap_or(false);
        };
        if started == Some(true) {
            return true;
        }
        dom::mark_interactive();
        let on_event: Rc<dyn Fn(RefundEvent)> = Rc::new(move |event: RefundEvent| {
            let refund = event.refund;
            let before = payment.with_untracked(|p| {
                p.refunds
                    .iter()
                    .find(|r| {
                        (refund.attempt_id.is_some() && r.attempt_id == refund.attempt_id)
                            || (refund.refund_id.is_some() && r.refund_id == refund.refund_id)
                    })
                    .map(|r| r.state)
            });
            if before != Some(refund.state) {
                status.set(state_message(&refund, locale));
            }
            payment.update(|p| p.upsert_refund(refund));
        });
        let on_reconnect: Rc<dyn Fn()> = Rc::new(fetch);
        stream.set_value(Some(EventStream::start(
            client.get_value(),
            on_event,
            on_reconnect,
        )));
        true
    });
    on_cleanup(move || {
        stream.with_value(|s| {
            if let Some(s) = s {
                s.close();
            }
        })
    });

    let submit: Submit = Rc::new(move |submission| {
        let client = client.get_value();
        Box::pin(async move { client.refund(&submission).await })
    });
    let submit = StoredValue::new_local(submit);
    let decide: Decide = Rc::new(move |attempt, approve, note| {
        let client = client.get_value();
        Box::pin(async move { client.decide(&attempt, approve, note).await })
    });
    let decide = StoredValue::new_local(decide);

    view! {
        <section class="sgr" data-testid=testids::WIDGET lang=i18n::tag(locale) aria-label=tr(locale, "Refund", "Возврат")>
            <h2 class="sgr-title" data-testid=testids::TITLE>{move || match load.get() {
                Load::Ready(payment) => payment.with(|p| i18n::title(p, locale)),
                _ => tr(locale, "Refund payment", "Возврат платежа"),
            }}</h2>
            {move || match load.get() {
                Load::Loading => view! {
                    <p class="sgr-muted" role="status" data-testid=testids::LOADING>
                        {tr(locale, "Loading the payment…", "Загружаем платёж…")}
                    </p>
                }.into_any(),
                Load::Failed(message) => view! {
                    <p class="sgr-alert" role="alert" data-testid=testids::FORM_ERROR>{rx(move || message.get())}</p>
                    <div class="sgr-actions">
                        <button type="button" data-testid=testids::RETRY_BUTTON on:click=move |_| {
                            load.set(Load::Loading);
                            fetch();
                        }>{tr(locale, "Try again", "Повторить")}</button>
                    </div>
                }.into_any(),
                Load::Ready(payment) => view! {
                    <RefundPanel payment submit=submit.get_value() decide=decide.get_value() status locale />
                }.into_any(),
            }}
        </section>
    }
}

/// What the live region says when an event changes a refund. A chargeback is no refund, and
/// is never announced as one.
fn state_message(refund: &shared::api::RefundView, locale: Locale) -> String {
    let amount = refund.amount.format(locale);
    let state = i18n::state_phrase(refund.state, locale);
    if refund.is_chargeback {
        return format!(
            "{}{amount}{}",
            tr(locale, "Chargeback received: ", "Получен чарджбэк: "),
            tr(locale, ". The payment is disputed.", ". Платёж оспорен.")
        );
    }
    match locale {
        Locale::En => format!("Refund of {amount}: {state}."),
        Locale::Ru => format!("Возврат {amount}: {state}."),
    }
}
