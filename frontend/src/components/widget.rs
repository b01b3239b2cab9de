//! The widget for one payment: loads it, keeps it live through the event stream, and hands it
//! to [`RefundPanel`] with a submitter that talks to the proxy.

use std::rc::Rc;

use leptos::prelude::*;
use shared::api::{PaymentView, RefundEvent, RefundState, RefundView};
use shared::Locale;

use crate::api::{Client, EventStream};
use crate::components::{Decide, RefundPanel, Submit};
use crate::dom;
use crate::dom::rx;
use crate::i18n::{self, tr};
use crate::rereads::Rereads;
use crate::testids;
use wasm_bindgen::JsValue;

/// Notes a refund's state; announces `sg-refund:settled` once it is final (if asked to).
type Settle = Rc<dyn Fn(&RefundView, bool)>;

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
    // "Try again" was pressed: once loaded, the keyboard goes back into the widget (the button
    // it pressed is gone) instead of to the top of the host page.
    let retried = StoredValue::new_local(false);
    let status = RwSignal::new(String::new());
    let client = StoredValue::new_local(client);
    let stream = StoredValue::new_local(None::<EventStream>);

    // `sg-refund:settled` for the host page: once per refund, whichever of the submission's
    // answer, the event stream or a reload tells of it first. Refunds already final when the
    // payment loads are only noted.
    // One compiled body behind a shared pointer, called from four places.
    let announced = StoredValue::new_local(Vec::<String>::new());
    // When a widget without a stream re-reads its payment (see `Rereads`).
    let reads = StoredValue::new_local(Rereads::new(
        js_sys::Date::now(),
        js_sys::Math::random() * Rereads::IDLE_MS,
    ));
    let settle: Settle = Rc::new(move |refund, announce| {
        let key = refund
            .attempt_id
            .as_ref()
            .map(|a| a.to_string())
            .or_else(|| refund.refund_id.as_ref().map(|r| r.to_string()));
        let Some(key) = key.filter(|_| refund.state.is_final() && !refund.is_chargeback) else {
            return;
        };
        if announced.with_value(|seen| seen.contains(&key)) {
            return;
        }
        announced.update_value(|seen| seen.push(key));
        if announce {
            let client = client.get_value();
            let code = refund.error_code.map(|c| c.name().to_owned());
            let extra = ("errorCode", dom::text_or_null(code));
            let (host, session) = (client.host(), client.session());
            dom::emit_refund(host, dom::events::SETTLED, &session, refund, Some(extra));
        }
    });
    let settle = StoredValue::new_local(settle);
    // Called after answers come back: the widget may have left the page meanwhile.
    let settle = move |refund: &RefundView, announce: bool| {
        settle.try_with_value(|f| f(refund, announce));
    };

    let fetch = move || {
        let Some(client) = client.try_get_value() else {
            return;
        };
        leptos::task::spawn_local(async move {
            let answer = client.payment().await;
            // The widget may have left the page while the answer was on its way.
            let Some(current) = load.try_get_untracked() else {
                return;
            };
            match answer {
                Ok(view) => match current {
                    // A reload after reconnecting: update in place, keep the form as it is.
                    Load::Ready(payment) => {
                        view.refunds.iter().for_each(|r| settle(r, true));
                        // Told as an event would tell it: a widget without a stream learns
                        // only this way that a refund settled or a chargeback came. (A host
                        // listening to `settled` may have removed the widget just now.)
                        let Some(moved) = payment.try_with_untracked(|shown| {
                            view.refunds
                                .iter()
                                .rfind(|r| moves(shown, r) == Some(true))
                                .cloned()
                        }) else {
                            return;
                        };
                        if let Some(refund) = moved {
                            status.set(state_message(&refund, locale));
                        }
                        // No refund goes back to an older state an event already moved past.
                        let mut view = view;
                        payment.update(|shown| {
                            std::mem::swap(shown, &mut view);
                            shown.keep_ahead(view);
                        });
                    }
                    _ => {
                        view.refunds.iter().for_each(|r| settle(r, false));
                        load.set(Load::Ready(RwSignal::new(view)));
                    }
                },
                Err(error) => {
                    if !matches!(current, Load::Ready(_)) {
                        load.set(Load::Failed(RwSignal::new(error.message(locale))));
                    }
                }
            }
            if retried.try_update_value(std::mem::take) == Some(true) {
                request_animation_frame(move || {
                    use wasm_bindgen::JsCast;
                    if !dom::focus_is_free() {
                        return;
                    }
                    let widget = client.host().first_element_child();
                    if let Some(widget) =
                        widget.and_then(|w| w.dyn_into::<web_sys::HtmlElement>().ok())
                    {
                        let _ = widget.focus();
                    }
                });
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
        let (amount, remaining, last_event_id) =
            payment.with_untracked(|p| (p.amount, p.refundable_now(), p.last_event_id));
        let host = client.get_value();
        let on_event: Rc<dyn Fn(RefundEvent)> = Rc::new(move |event: RefundEvent| {
            let refund = event.refund;
            // Older than what is shown (replayed after a look-up that saw it), or the widget
            // gone: nothing to do.
            let Some(Some(moved)) = payment.try_with_untracked(|p| moves(p, &refund)) else {
                return;
            };
            if moved {
                status.set(state_message(&refund, locale));
            }
            settle(&refund, true);
            payment.update(|p| p.upsert_refund(refund));
        });
        let on_reconnect: Rc<dyn Fn(bool)> = Rc::new(move |polled| {
            if polled {
                let on_its_way = payment
                    .try_with_untracked(|p| {
                        p.refunds
                            .iter()
                            .filter(|r| {
                                matches!(
                                    r.state,
                                    RefundState::Pending
                                        | RefundState::Unknown
                                        | RefundState::InProgress
                                )
                            })
                            .count()
                    })
                    .unwrap_or(0);
                let due = reads
                    .try_update_value(|reads| reads.due(on_its_way, js_sys::Date::now()))
                    .unwrap_or(false);
                if !due {
                    return;
                }
            }
            fetch();
        });
        stream.set_value(Some(EventStream::start(
            host.clone(),
            last_event_id,
            on_event,
            on_reconnect,
        )));
        // Last: a host listener may remove the widget (and so dispose of all of the above).
        dom::emit(
            host.host(),
            dom::events::READY,
            &[
                ("session", JsValue::from_str(&host.session())),
                ("amount", JsValue::from_f64(amount.amount as f64)),
                ("currency", JsValue::from_str(&amount.currency.code())),
                ("remaining", JsValue::from_f64(remaining.amount as f64)),
            ],
        );
        true
    });
    on_cleanup(move || {
        stream.with_value(|s| {
            if let Some(s) = s {
                s.close();
            }
        });
        // Made by an answer, in a task no owner disposes of: let go of here, or every mount
        // would keep its payment for the page's life (an admin page mounts widgets all day).
        match load.get_untracked() {
            Load::Ready(payment) => payment.dispose(),
            Load::Failed(message) => message.dispose(),
            Load::Loading => {}
        }
    });

    let submit: Submit = Rc::new(move |submission| {
        let client = client.get_value();
        Box::pin(async move {
            let answer = client.refund(&submission).await;
            if let Ok((refund, _)) = &answer {
                let (host, session) = (client.host(), client.session());
                dom::emit_refund(host, dom::events::SUBMITTED, &session, refund, None);
                settle(refund, true);
            }
            answer
        })
    });
    let submit = StoredValue::new_local(submit);
    let decide: Decide = Rc::new(move |attempt, approve, note| {
        let client = client.get_value();
        Box::pin(async move {
            let answer = client.decide(&attempt, approve, note).await;
            if let Ok((refund, _)) = &answer {
                settle(refund, true);
            }
            answer
        })
    });
    let decide = StoredValue::new_local(decide);

    view! {
        <section class="sgr" tabindex="-1" data-testid=testids::WIDGET lang=i18n::tag(locale) aria-label=tr(locale, "Refund", "Возврат")>
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
                            retried.set_value(true);
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

/// How `refund`, from an event or a re-read, compares with what `shown` has of it: `None` if
/// older than what is shown (it changes nothing), else whether it is new or in a new state.
fn moves(shown: &PaymentView, refund: &RefundView) -> Option<bool> {
    match shown.refunds.iter().find(|r| r.same_refund(refund)) {
        Some(r) if !r.may_become(refund) => None,
        Some(r) => Some(r.state != refund.state),
        None => Some(true),
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
