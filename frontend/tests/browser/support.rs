//! Building payments and mounting the panel the way the widget does, then acting like an agent.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use frontend::api::{CallError, Submitted};
use frontend::components::{Decide, RefundPanel, Submit};
use leptos::prelude::*;
use shared::api::{CardView, PaymentView, RefundState, RefundSubmission, RefundView};
use shared::smart_glocal::PaymentStatus;
use shared::{Currency, Locale, Money, SessionId};
use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, HtmlInputElement};

/// A succeeded Visa •••• 4242 payment of `amount` minor units.
pub fn payment(amount: u64, currency: &str, partial_refunds_allowed: bool) -> PaymentView {
    PaymentView {
        session_id: SessionId::parse("ps_test").unwrap(),
        payment_id: "pm_test".into(),
        status: PaymentStatus::Succeeded,
        amount: Money::new(amount, Currency::parse(currency).unwrap()),
        payment_type: "card".into(),
        card: Some(CardView {
            brand: "visa".into(),
            last4: "4242".into(),
        }),
        customer_reference: Some("cust-42".into()),
        created_at: None,
        refunds: Vec::new(),
        partial_refunds_allowed,
        viewer: Default::default(),
        last_event_id: 0,
    }
}

pub fn refund(amount: Money, state: RefundState, is_chargeback: bool) -> RefundView {
    RefundView {
        attempt_id: Some(shared::AttemptId::from_random(u128::from(amount.amount))),
        refund_id: None,
        amount,
        state,
        is_chargeback,
        agent: None,
        reason: None,
        note: None,
        error_code: None,
        error_detail: None,
        attention: None,
        created_at: None,
        finished_at: None,
    }
}

/// A submitter that counts its calls and answers with `answer` (or never, if `None`).
pub fn counting_submit(
    answer: Option<Result<(RefundView, Submitted), CallError>>,
) -> (Submit, Rc<Cell<u32>>) {
    let calls = Rc::new(Cell::new(0));
    let counter = calls.clone();
    let submit: Submit = Rc::new(move |_submission: RefundSubmission| {
        counter.set(counter.get() + 1);
        let answer = answer.clone();
        Box::pin(async move {
            match answer {
                Some(answer) => answer,
                None => std::future::pending().await,
            }
        })
    });
    (submit, calls)
}

/// The idempotency keys a submitter was sent, in order.
pub type Keys = Rc<RefCell<Vec<String>>>;

/// A submitter that records each submission's idempotency key and answers the `n`-th
/// (counting from 1) with `answer(n)`.
pub fn key_recording_submit(
    answer: impl Fn(usize) -> Result<(RefundView, Submitted), CallError> + 'static,
) -> (Submit, Keys) {
    let keys = Keys::default();
    let seen = keys.clone();
    let submit: Submit = Rc::new(move |submission: RefundSubmission| {
        let count = {
            let mut seen = seen.borrow_mut();
            seen.push(submission.idempotency_key.to_string());
            seen.len()
        };
        let answer = answer(count);
        Box::pin(async move { answer })
    });
    (submit, keys)
}

/// A mounted panel; dropping it removes it from the page.
pub struct Mounted {
    pub root: HtmlElement,
    pub payment: RwSignal<PaymentView>,
    _handle: Box<dyn std::any::Any>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.root.remove();
    }
}

pub fn mount_panel(view: PaymentView, locale: Locale, submit: Submit) -> Mounted {
    mount(view, locale, submit, None)
}

/// A panel whose agent may also approve or reject requests, through `decide`.
pub fn mount_deciding_panel(
    view: PaymentView,
    locale: Locale,
    submit: Submit,
    decide: Decide,
) -> Mounted {
    mount(view, locale, submit, Some(decide))
}

fn mount(view: PaymentView, locale: Locale, submit: Submit, decide: Option<Decide>) -> Mounted {
    frontend::style::install();
    let document = web_sys::window().unwrap().document().unwrap();
    let root: HtmlElement = document.create_element("div").unwrap().unchecked_into();
    document.body().unwrap().append_child(&root).unwrap();
    let payment = RwSignal::new(view);
    let status = RwSignal::new(String::new());
    let handle = leptos::mount::mount_to(root.clone(), move || {
        let decide = decide.clone();
        match decide {
            Some(decide) => {
                view! { <div class="sgr"><RefundPanel payment submit decide status locale /></div> }
                    .into_any()
            }
            None => view! { <div class="sgr"><RefundPanel payment submit status locale /></div> }
                .into_any(),
        }
    });
    Mounted {
        root,
        payment,
        _handle: Box::new(handle),
    }
}

impl Mounted {
    pub fn find(&self, testid: &str) -> Option<HtmlElement> {
        self.root
            .query_selector(&format!("[data-testid=\"{testid}\"]"))
            .unwrap()
            .map(|e| e.unchecked_into())
    }

    pub fn get(&self, testid: &str) -> HtmlElement {
        self.find(testid)
            .unwrap_or_else(|| panic!("no element with data-testid={testid}"))
    }

    pub fn count(&self, testid: &str) -> u32 {
        self.root
            .query_selector_all(&format!("[data-testid=\"{testid}\"]"))
            .unwrap()
            .length()
    }

    pub fn text(&self, testid: &str) -> String {
        self.get(testid)
            .text_content()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// On screen, not just without `hidden`: a style that overrides `hidden` would show an
    /// empty box, and this catches it.
    pub fn visible(&self, testid: &str) -> bool {
        self.find(testid)
            .is_some_and(|e| !e.hidden() && e.offset_height() > 0)
    }

    pub fn attr(&self, testid: &str, name: &str) -> Option<String> {
        self.get(testid).get_attribute(name)
    }

    pub fn click(&self, testid: &str) {
        self.get(testid).click();
    }

    /// A partial refund of `amount` typed and reviewed: the confirmation is open.
    pub async fn review_partial(&self, amount: &str) {
        self.click(frontend::testids::MODE_PARTIAL);
        settle().await;
        self.type_text(frontend::testids::AMOUNT_INPUT, amount);
        self.click(frontend::testids::REVIEW_BUTTON);
        settle().await;
    }

    /// Types as a person would: the value changes, then `input` fires.
    pub fn type_text(&self, testid: &str, text: &str) {
        let input: HtmlInputElement = self.get(testid).unchecked_into();
        input.set_value(text);
        input
            .dispatch_event(&web_sys::Event::new("input").unwrap())
            .unwrap();
    }

    /// A field's current value.
    pub fn value(&self, testid: &str) -> String {
        self.get(testid)
            .unchecked_into::<HtmlInputElement>()
            .value()
    }

    pub fn select(&self, testid: &str, value: &str) {
        let select: web_sys::HtmlSelectElement = self.get(testid).unchecked_into();
        select.set_value(value);
        select
            .dispatch_event(&web_sys::Event::new("change").unwrap())
            .unwrap();
    }
}

/// Lets the reactive system and the renderer catch up.
pub async fn settle() {
    for _ in 0..3 {
        leptos::task::tick().await;
    }
}
