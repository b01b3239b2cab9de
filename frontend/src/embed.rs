//! Embedding: mounts a widget into every `[data-sg-refund]` element, and gives the host
//! `window.sgRefund.mount(element, options)` / `unmount(element)` for elements added later.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::prelude::*;
use shared::SessionId;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};

use crate::api::Client;
use crate::components::RefundWidget;
use crate::token::TokenSource;
use crate::{dom, style};

/// The marker attribute of an element a widget mounts into.
pub const MARKER: &str = "data-sg-refund";
/// Fired on `document` once `window.sgRefund` is there.
pub const READY_EVENT: &str = crate::dom::events::READY;

struct Mounted {
    element: Element,
    token: Rc<TokenSource>,
    /// Dropping it removes the widget (and stops its event stream).
    _handle: Box<dyn std::any::Any>,
}

thread_local! {
    static MOUNTED: RefCell<Vec<Mounted>> = const { RefCell::new(Vec::new()) };
}

/// Runs once when the script loads.
pub fn boot() {
    style::install();
    expose_api();
    mount_all();
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        crate::dom::dispatch(&document, READY_EVENT, &JsValue::NULL);
    }
}

/// Mounts into every `[data-sg-refund]` element not yet mounted.
pub fn mount_all() {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(nodes) = document.query_selector_all(&format!("[{MARKER}]")) else {
        return;
    };
    for i in 0..nodes.length() {
        if let Some(element) = nodes.get(i).and_then(|n| n.dyn_into::<HtmlElement>().ok()) {
            if !is_mounted(&element) {
                mount_element(&element, None, None);
            }
        }
    }
}

/// `mount(element, {session, proxy, token, lang, onTokenExpired})`: options, where given,
/// are written to the element's `data-*` attributes, which stay the source of truth (the
/// host renews the token by setting `data-token`). The embed script's own `<sg-refund>`
/// gives its token as `heldToken` instead, kept in memory and renewed by [`set_token`]: a
/// token from `fetchToken` never enters the page's DOM, where every script on the page,
/// extension and session recorder reads attributes.
pub fn mount(element: &HtmlElement, options: &JsValue) {
    for (key, attribute) in [
        ("session", "data-session"),
        ("proxy", "data-proxy"),
        ("token", "data-token"),
        ("lang", "data-lang"),
    ] {
        if let Some(value) = js_sys::Reflect::get(options, &key.into())
            .ok()
            .and_then(|v| v.as_string())
        {
            let _ = element.set_attribute(attribute, &value);
        }
    }
    let _ = element.set_attribute(MARKER, "");
    let on_expired = js_sys::Reflect::get(options, &"onTokenExpired".into())
        .ok()
        .and_then(|v| v.dyn_into::<js_sys::Function>().ok());
    let held = js_sys::Reflect::get(options, &"heldToken".into())
        .ok()
        .and_then(|v| v.as_string());
    unmount(element);
    mount_element(element, on_expired, held);
}

/// `setToken(element, token)`: the token of the widget mounted in `element`, from now on
/// (the embed script's renewal; see [`mount`]).
pub fn set_token(element: &Element, token: String) {
    let source = MOUNTED.with(|m| {
        m.borrow()
            .iter()
            .find(|w| &w.element == element)
            .map(|w| w.token.clone())
    });
    if let Some(source) = source {
        source.set(token);
    }
}

/// Removes the widget from `element`, closing its event stream.
pub fn unmount(element: &Element) {
    let removed: Vec<Mounted> = MOUNTED.with(|m| {
        let mut mounted = m.borrow_mut();
        let (gone, kept) = mounted.drain(..).partition(|w| &w.element == element);
        *mounted = kept;
        gone
    });
    for widget in removed {
        widget.token.detach();
        drop(widget);
    }
}

fn is_mounted(element: &Element) -> bool {
    MOUNTED.with(|m| m.borrow().iter().any(|w| &w.element == element))
}

fn mount_element(
    element: &HtmlElement,
    on_expired: Option<js_sys::Function>,
    held: Option<String>,
) {
    style::install();
    let attribute = |name: &str| element.get_attribute(name).filter(|v| !v.trim().is_empty());
    let locale = dom::locale_for(attribute("data-lang"));
    let proxy = attribute("data-proxy").unwrap_or_else(page_origin);
    // Not `innerHTML`: a host enforcing Trusted Types allows no HTML from a string.
    element.set_text_content(None);
    let token = TokenSource::attach(element, on_expired, held);
    let handle: Box<dyn std::any::Any> =
        match attribute("data-session").map(|s| SessionId::parse(&s)) {
            Some(Ok(session)) => {
                let client = Rc::new(Client::new(&proxy, session, token.clone()));
                Box::new(leptos::mount::mount_to(
                    element.clone(),
                    move || view! { <RefundWidget client locale /> },
                ))
            }
            _ => {
                // Plain elements, not a second Leptos view: it never changes, and a second
                // `mount_to` instantiation costs kilobytes of wasm.
                let message =
                    crate::i18n::error_message(shared::api::ErrorCode::InvalidSessionId, locale);
                let _ = invalid_session(element, message);
                Box::new(())
            }
        };
    MOUNTED.with(|m| {
        m.borrow_mut().push(Mounted {
            element: element.clone().into(),
            token,
            _handle: handle,
        })
    });
}

/// `<div class="sgr"><p class="sgr-alert" role="alert" …>message</p></div>` in `element`.
fn invalid_session(element: &HtmlElement, message: &str) -> Result<(), JsValue> {
    let document = element.owner_document().ok_or(JsValue::NULL)?;
    let root = document.create_element("div")?;
    root.set_class_name("sgr");
    let alert = document.create_element("p")?;
    alert.set_class_name("sgr-alert");
    alert.set_attribute("role", "alert")?;
    alert.set_attribute("data-testid", crate::testids::FORM_ERROR)?;
    alert.set_text_content(Some(message));
    root.append_child(&alert)?;
    element.append_child(&root)?;
    Ok(())
}

fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

/// `window.sgRefund.{mount, unmount, mountAll}`, added to the object the embed script made
/// (which holds `init` and the `<sg-refund>` element), or to a new one.
fn expose_api() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let api = js_sys::Reflect::get(&window, &"sgRefund".into())
        .ok()
        .filter(|api| api.is_object())
        .unwrap_or_else(|| js_sys::Object::new().into());
    let mount_fn =
        Closure::<dyn Fn(JsValue, JsValue)>::new(|element: JsValue, options: JsValue| {
            if let Ok(element) = element.dyn_into::<HtmlElement>() {
                mount(&element, &options);
            }
        });
    let unmount_fn = Closure::<dyn Fn(JsValue)>::new(|element: JsValue| {
        if let Ok(element) = element.dyn_into::<Element>() {
            unmount(&element);
        }
    });
    let mount_all_fn = Closure::<dyn Fn()>::new(mount_all);
    let set_token_fn =
        Closure::<dyn Fn(JsValue, JsValue)>::new(|element: JsValue, token: JsValue| {
            if let (Ok(element), Some(token)) = (element.dyn_into::<Element>(), token.as_string()) {
                set_token(&element, token);
            }
        });
    let _ = js_sys::Reflect::set(&api, &"mount".into(), mount_fn.as_ref());
    let _ = js_sys::Reflect::set(&api, &"unmount".into(), unmount_fn.as_ref());
    let _ = js_sys::Reflect::set(&api, &"mountAll".into(), mount_all_fn.as_ref());
    let _ = js_sys::Reflect::set(&api, &"setToken".into(), set_token_fn.as_ref());
    let _ = js_sys::Reflect::set(&window, &"sgRefund".into(), &api);
    // Page-lifetime functions: leaking them is the point.
    mount_fn.forget();
    unmount_fn.forget();
    mount_all_fn.forget();
    set_token_fn.forget();
}
