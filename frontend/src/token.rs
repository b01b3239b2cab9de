//! The agent token, owned by the host page: read from `data-token`, renewed by asking the host.
//!
//! On `token_expired` the widget fires a bubbling `sg-refund:token-expired` event on its element
//! (and calls the optional `onTokenExpired` callback); the host answers by setting a new
//! `data-token`, which a `MutationObserver` sees. Callers await [`TokenSource::renewed`].

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, MutationObserver, MutationObserverInit};

/// The event the host listens for to mint a new token.
pub const TOKEN_EXPIRED_EVENT: &str = crate::dom::events::TOKEN_EXPIRED;
const TOKEN_ATTRIBUTE: &str = "data-token";
/// How long a renewal waits for the host's answer.
pub const RENEWAL_WAIT_MS: i32 = 15_000;

/// The observer and the callback it calls, which must live as long as it does.
type Watch = (MutationObserver, Closure<dyn FnMut()>);

/// Where the widget's token comes from and how it learns of a new one.
pub struct TokenSource {
    element: Element,
    current: RefCell<String>,
    waiters: RefCell<Vec<js_sys::Function>>,
    on_expired: Option<js_sys::Function>,
    observer: RefCell<Option<Watch>>,
}

impl TokenSource {
    /// Starts from `held` (a token kept in memory, never in the DOM: see `embed::mount`) or
    /// else `data-token`, and watches `data-token` for changes made by the host.
    pub fn attach(
        element: &Element,
        on_expired: Option<js_sys::Function>,
        held: Option<String>,
    ) -> Rc<Self> {
        let held = held.or_else(|| element.get_attribute(TOKEN_ATTRIBUTE));
        let source = Rc::new(Self {
            element: element.clone(),
            current: RefCell::new(held.unwrap_or_default()),
            waiters: RefCell::new(Vec::new()),
            on_expired,
            observer: RefCell::new(None),
        });
        // The closure holds a weak reference: the observer must not keep a removed widget alive.
        let weak = Rc::downgrade(&source);
        let callback = Closure::<dyn FnMut()>::new(move || {
            if let Some(source) = weak.upgrade() {
                source.attribute_changed();
            }
        });
        if let Ok(observer) = MutationObserver::new(callback.as_ref().unchecked_ref()) {
            let options = MutationObserverInit::new();
            options.set_attributes(true);
            options.set_attribute_filter(&js_sys::Array::of1(&TOKEN_ATTRIBUTE.into()));
            if observer.observe_with_options(element, &options).is_ok() {
                *source.observer.borrow_mut() = Some((observer, callback));
            }
        }
        source
    }

    /// The element the widget is mounted in.
    pub fn element(&self) -> &Element {
        &self.element
    }

    pub fn current(&self) -> String {
        self.current.borrow().clone()
    }

    /// Asks the host for a new token and resolves once `data-token` has been set again, or
    /// after [`RENEWAL_WAIT_MS`] without an answer: the call then goes on with the token it
    /// has, and after its last renewal (three per call) its caller reports the refusal instead
    /// of waiting for ever.
    pub async fn renewed(&self) {
        self.renewed_within(RENEWAL_WAIT_MS).await;
    }

    /// [`Self::renewed`], waiting at most `ms` for the host.
    pub async fn renewed_within(&self, ms: i32) {
        // Register before asking, so a host that answers synchronously is not missed.
        let mut waiter = None;
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            waiter = Some(resolve.clone());
            self.waiters.borrow_mut().push(resolve);
        });
        let deadline = js_sys::Promise::new(&mut |resolve, _reject| {
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        crate::dom::dispatch(&self.element, TOKEN_EXPIRED_EVENT, &JsValue::NULL);
        if let Some(callback) = &self.on_expired {
            let _ = callback.call1(&JsValue::NULL, &self.element);
        }
        let first = js_sys::Promise::race(&js_sys::Array::of2(&promise, &deadline));
        let _ = wasm_bindgen_futures::JsFuture::from(first).await;
        // Given up on (or answered): no longer waiting, so the list does not grow with every
        // renewal a silent host leaves unanswered.
        if let Some(waiter) = waiter {
            self.waiters
                .borrow_mut()
                .retain(|w| !js_sys::Object::is(w, &waiter));
        }
    }

    fn attribute_changed(&self) {
        self.set(
            self.element
                .get_attribute(TOKEN_ATTRIBUTE)
                .unwrap_or_default(),
        );
    }

    /// The token from now on (`data-token` changed, or the embed script renewed a token it
    /// keeps out of the DOM); a renewal waiting for it goes on.
    pub fn set(&self, token: String) {
        *self.current.borrow_mut() = token;
        for resolve in self.waiters.take() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }

    /// Stops watching the element (the widget was unmounted).
    pub fn detach(&self) {
        if let Some((observer, _callback)) = self.observer.take() {
            observer.disconnect();
        }
        self.waiters.take();
    }
}
