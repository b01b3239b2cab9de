// The refund widget's loader: the one script a host page adds. Types: sg-refund.d.ts beside it.
//
//   <script type="module" src="https://refunds.example/sg-refund-embed.js"></script>
//   <script type="module">
//     sgRefund.init({ proxy: "https://refunds.example", fetchToken: async () => myBackendToken() });
//   </script>
//   <sg-refund session="ps_…" lang="en"></sg-refund>
//
// `init` (once; `update` changes locale and appearance later) gives every <sg-refund> element its
// proxy, its token — asked of `fetchToken` at start and whenever the proxy says it expired, one
// call at a time however many widgets ask — its language and its look. The element loads the
// payment named by `session`, follows changes to `session`, `proxy` and `lang`, and closes its
// event stream when it leaves the page. Events (bubbling, each a CustomEvent with a `detail`):
// sg-refund:ready, sg-refund:submitted, sg-refund:settled, sg-refund:error.
//
// The older way keeps working: <div data-sg-refund data-session data-proxy data-token data-lang>,
// or mount(element, options), renewing the token on `sg-refund:token-expired` by setting
// `data-token`. The widget's code (sg-refund.js, sg-refund_bg.wasm) loads from this script's folder.

const base = new URL(".", import.meta.url);
const expiredHandlers = new WeakMap();
const unmounted = new WeakSet();
// The widget adds mount / unmount / mountAll to this same object once its code has loaded.
const api = (window.sgRefund = window.sgRefund || {});
// The widget's own mount and unmount, for parking widgets on "pagehide" (below); null until
// its code has loaded.
let widget = null;

function load() {
  if (api.mount) return Promise.resolve(api);
  if (!window.__sgRefundLoading) {
    // The host's calls are noted: what mount() is to call when the token expires (for the
    // mount after the page comes back from the back/forward cache), and which elements the
    // host unmounted itself (they stay unmounted). Noted from the first call on: the widget
    // sets its own mount and unmount here as it starts, and the document's sg-refund:ready,
    // on which a host may call mount(), comes before its start has finished.
    const own = {};
    const noted = {
      mount(element, options = {}) {
        expiredHandlers.set(element, options && options.onTokenExpired);
        unmounted.delete(element);
        own.mount(element, options);
      },
      unmount(element) {
        unmounted.add(element);
        own.unmount(element);
      },
    };
    for (const name of ["mount", "unmount"]) {
      Object.defineProperty(api, name, {
        configurable: true,
        enumerable: true,
        get: () => (own[name] ? noted[name] : undefined),
        set: (f) => {
          if (own[name]) {
            // A host's own assignment (a wrapper of ours, say) after the widget's: a plain
            // property from now on, holding what the host gave.
            Object.defineProperty(api, name, { value: f, writable: true, configurable: true, enumerable: true });
            return;
          }
          own[name] = f;
          if (own.mount && own.unmount) widget = own;
        },
      });
    }
    // The wasm compiles as its bytes arrive, off the page's main thread, while the glue
    // module loads: the glue only instantiates the compiled module. (Handing it the response
    // instead would start compiling only once the glue has loaded and run.)
    const wasm = fetch(new URL("sg-refund_bg.wasm", base)).then(compile);
    wasm.catch(() => {}); // a failure is reported by the glue, which awaits the same promise
    window.__sgRefundLoading = import(new URL("sg-refund.js", base).href)
      .then((glue) => glue.default({ module_or_path: wasm }))
      .then(() => api);
  }
  return window.__sgRefundLoading;
}

/** The widget's compiled module, streamed where the server says `application/wasm`. */
function compile(response) {
  if (!response.ok) throw new Error(`failed to fetch the widget's wasm: ${response.status} ${response.url}`);
  // Exactly that type: browsers refuse to stream anything else, parameters included.
  const type = (response.headers.get("Content-Type") || "").trim().toLowerCase();
  return typeof WebAssembly.compileStreaming === "function" && type === "application/wasm"
    ? WebAssembly.compileStreaming(response)
    : response.arrayBuffer().then((bytes) => WebAssembly.compile(bytes));
}

// Payment look-ups started here, while the widget's code downloads and compiles: the widget
// takes its answer (once, within ten seconds) instead of sending the same request itself.
const prefetched = new Map();
function prefetch(proxy, session, token) {
  if (!/^ps_[\w-]+$/.test(session || "")) return;
  const url = `${proxy.replace(/\/+$/, "")}/api/payments/${session}`;
  const key = `${url} ${token}`;
  if (prefetched.has(key)) return;
  const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
  const response = fetch(url, { mode: "cors", headers });
  response.catch(() => {}); // a failure is the widget's to report, once it takes the answer
  prefetched.set(key, response);
  setTimeout(() => prefetched.delete(key), 10000);
}
api.takePrefetched = (url, token) => {
  const answer = prefetched.get(`${url} ${token}`);
  prefetched.delete(`${url} ${token}`);
  return answer;
};
for (const element of document.querySelectorAll("[data-sg-refund]")) {
  const data = element.dataset;
  prefetch(data.proxy || location.origin, data.session, data.token || "");
}

export const ready = load();
// The widget's code could not run here: WebAssembly blocked (a page's CSP without
// 'wasm-unsafe-eval', a policy turning it off), a browser too old for it, or its files not
// fetched. Each widget says so in place of a blank box, and the host hears `sg-refund:error`.
ready.catch((error) => {
  for (const element of document.querySelectorAll("[data-sg-refund]")) cannotRun(element, error, element.dataset.lang);
});
// Told once per element, and never in one its host unmounted.
const failed = new WeakSet();
function cannotRun(element, error, lang) {
  if (failed.has(element) || unmounted.has(element)) return;
  failed.add(element);
  const russian = /^ru/i.test(lang || settings.locale || document.documentElement.lang || "");
  const line = document.createElement("p");
  line.setAttribute("role", "alert");
  line.textContent = russian
    ? "Возвраты не работают в этом браузере или на этой странице. Перезагрузите её или откройте в актуальном браузере."
    : "Refunds cannot run in this browser or on this page. Reload it, or open it in a current browser.";
  element.replaceChildren(line);
  element.dispatchEvent(
    new CustomEvent("sg-refund:error", {
      bubbles: true,
      composed: true,
      detail: { session: element.session || element.dataset.session || "", code: "load_failed", status: 0, message: String((error && error.message) || error) },
    }),
  );
}

export async function mount(element, options = {}) {
  let widget;
  try {
    widget = await ready;
  } catch (error) {
    cannotRun(element, error, options && options.lang);
    throw error;
  }
  widget.mount(element, options);
}
export async function unmount(element) {
  (await ready).unmount(element);
}

// What `init` set: shared by every <sg-refund> on the page.
let settings = {};
let initialized = false;
// The token call in flight, shared by every widget that needs a token meanwhile.
let inflight = null;
// The last token `fetchToken` gave: a widget still holding an older one gets this one first.
let latest = "";

/** The newest token, asking `fetchToken` once for all concurrent callers; a call that has
 *  not answered in 15 s fails (the host hears `token_unavailable`), so a stalled backend
 *  never leaves the widgets blank, and the next need asks again. */
function freshToken() {
  if (!inflight) {
    let timer;
    // A call made before the last `init` (another agent's backend, say) hands its token only
    // to those who asked before it.
    const asked = settings;
    const call = Promise.race([
      // A token that comes after the limit is still kept for the next widget that needs one.
      Promise.resolve()
        .then(() => asked.fetchToken())
        .then((token) => {
          if (typeof token !== "string" || token === "") {
            throw new TypeError("fetchToken must resolve to a non-empty string");
          }
          if (settings === asked) latest = token;
          return token;
        }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("fetchToken timed out")), 15000);
      }),
    ])
      .finally(() => {
        clearTimeout(timer);
        if (inflight === call) inflight = null;
      });
    inflight = call;
  }
  return inflight;
}

// appearance keys; each sets --sgr-<key> (kebab-case), but for the two renamed here.
const KEYS = "accent accentText background surface text muted border danger success warning focus radius font spacing".split(" ");
const RENAMED = { background: "bg", text: "fg" };
const property = (key) => `--sgr-${RENAMED[key] || key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}`;

// What appearance set on each element, so a change removes only its own properties and
// leaves the host's inline ones alone.
const applied = new WeakMap();

function applyAppearance(element) {
  const appearance = settings.appearance || {};
  for (const name of applied.get(element) || []) {
    if (name === "data-sgr-theme") element.removeAttribute(name);
    else element.style.removeProperty(name);
  }
  const set = [];
  for (const key of KEYS) {
    if (appearance[key] != null && appearance[key] !== "") {
      element.style.setProperty(property(key), String(appearance[key]));
      set.push(property(key));
    }
  }
  if (appearance.theme === "dark" || appearance.theme === "light") {
    element.setAttribute("data-sgr-theme", appearance.theme);
    set.push("data-sgr-theme");
  }
  applied.set(element, set);
}

const elements = new Set();

/**
 * Configures every <sg-refund> on the page; returns the instance, which creates elements and
 * updates the locale and appearance of those on the page.
 */
export function init(options = {}) {
  if (options.fetchToken != null && typeof options.fetchToken !== "function") {
    throw new TypeError("sgRefund.init: fetchToken must be a function returning a promise of a token");
  }
  settings = { ...options };
  initialized = true;
  latest = "";
  inflight = null;
  for (const element of elements) {
    applyAppearance(element);
    element.refresh(true);
  }
  return instance;
}

const instance = {
  /** A new <sg-refund> for payment `session`, for the host to place. */
  create(session, attributes = {}) {
    const element = document.createElement("sg-refund");
    element.setAttribute("session", session);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
    return element;
  },
  /** Changes `locale` and/or `appearance` for every element, live. */
  update({ locale, appearance } = {}) {
    if (appearance !== undefined) settings.appearance = appearance;
    const relang = locale !== undefined && locale !== settings.locale;
    if (locale !== undefined) settings.locale = locale;
    for (const element of elements) {
      applyAppearance(element);
      if (relang && !element.hasAttribute("lang")) element.refresh(false);
    }
  },
};

// The token each <sg-refund>'s widget holds. Kept here and handed to the widget in memory
// (mount's `heldToken`, then `setToken`), never as an attribute: a token from fetchToken stays
// out of the page's DOM, which session recorders, error reporters and extensions read.
const heldTokens = new WeakMap();
function hold(slot, token) {
  heldTokens.set(slot, token);
  if (api.setToken) api.setToken(slot, token);
}

class SgRefundElement extends HTMLElement {
  static observedAttributes = ["session", "proxy", "lang", "token"];

  #slot = null; // the element the widget mounts into
  #generation = 0; // which refresh is current: an older one awaiting a token gives up

  constructor() {
    super();
    // The widget asks for a new token: answer from fetchToken, where the host gave one.
    this.addEventListener("sg-refund:token-expired", (event) => {
      if (!settings.fetchToken || this.hasAttribute("token") || !this.#slot) return;
      const slot = this.#slot;
      const held = heldTokens.get(slot);
      const answer = held !== latest && latest ? Promise.resolve(latest) : freshToken();
      // Unless the host took over meanwhile (its own `token`), or the slot is gone.
      const current = () => this.#slot === slot && !this.hasAttribute("token");
      answer.then(
        (token) => current() && hold(slot, token),
        (error) => current() && this.#tokenFailed(slot, error, true),
      );
      event.stopPropagation();
    });
  }

  get session() { return this.getAttribute("session") || ""; }
  set session(value) { this.setAttribute("session", value); }
  get proxy() { return this.getAttribute("proxy") || settings.proxy || location.origin; }
  set proxy(value) { this.setAttribute("proxy", value); }
  get lang() { return this.getAttribute("lang") || settings.locale || ""; }
  set lang(value) { this.setAttribute("lang", value); }
  get token() { return this.getAttribute("token"); }
  set token(value) {
    if (value == null) this.removeAttribute("token");
    else this.setAttribute("token", value);
  }

  connectedCallback() {
    elements.add(this);
    applyAppearance(this);
    this.refresh(false);
  }

  disconnectedCallback() {
    elements.delete(this);
    this.suspend();
  }

  /** Removes the widget and closes its event stream; `refresh` brings it back. */
  suspend() {
    this.#generation++;
    this.#unmount();
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected) return;
    if (name === "token" && this.#slot) {
      const slot = this.#slot;
      if (after !== null || !settings.fetchToken) {
        hold(slot, after || "");
        return;
      }
      // The host took its token away: fetchToken signs the widget in from now on.
      const answer = latest ? Promise.resolve(latest) : freshToken();
      answer.then(
        (token) => {
          if (this.#slot === slot && !this.hasAttribute("token")) hold(slot, token);
        },
        (error) => {
          if (this.#slot === slot && !this.hasAttribute("token")) this.#tokenFailed(slot, error);
        },
      );
    } else if (name === "token" || this.#slot) {
      this.refresh(false);
    }
  }

  /** (Re)mounts the widget for the current attributes; `renew` asks fetchToken even if a
   *  token is at hand. */
  async refresh(renew) {
    const generation = ++this.#generation;
    let token = this.getAttribute("token");
    // Nothing to sign in with yet: wait for `init` or a `token` attribute (an element in the
    // page's HTML is upgraded before the host's own script has called `init`).
    if (token === null && !initialized) return;
    let failure = null;
    if (token === null && settings.fetchToken) {
      try {
        token = renew || !latest ? await freshToken() : latest;
      } catch (error) {
        failure = error;
        token = "";
      }
    }
    if (generation !== this.#generation || !this.isConnected) return;
    prefetch(this.proxy, this.session, token || "");
    let widget;
    try {
      widget = await ready;
    } catch (error) {
      if (generation === this.#generation && this.isConnected) cannotRun(this, error, this.lang);
      return;
    }
    if (generation !== this.#generation || !this.isConnected) return;
    this.#unmount();
    const slot = document.createElement("div");
    this.#slot = slot;
    this.append(slot);
    heldTokens.set(slot, token || "");
    widget.mount(slot, { session: this.session, proxy: this.proxy, heldToken: token || "", lang: this.lang });
    if (failure) this.#tokenFailed(slot, failure);
  }

  #unmount() {
    if (!this.#slot) return;
    if (api.unmount) api.unmount(this.#slot);
    this.#slot.remove();
    this.#slot = null;
  }

  // fetchToken rejected, and the host hears why. A renewal's failure leaves the widget the
  // token it holds (set again, so the renewal waiting for it goes on at once): expired, the
  // proxy says so again and a later renewal asks fetchToken anew; an empty one would sign it
  // out until a reload. Otherwise (the first token, or the host took its own away) the widget
  // is told it has none, and says the agent is not signed in.
  #tokenFailed(slot, error, renewing) {
    hold(slot, (renewing && heldTokens.get(slot)) || "");
    this.dispatchEvent(
      new CustomEvent("sg-refund:error", {
        bubbles: true,
        composed: true,
        detail: {
          session: this.session,
          code: "token_unavailable",
          status: 0,
          message: String((error && error.message) || error),
        },
      }),
    );
  }
}

api.init = init;
api.ready = ready;
api.update = instance.update;
api.create = instance.create;
if (!customElements.get("sg-refund")) customElements.define("sg-refund", SgRefundElement);

// Leaving the page (or going into the back/forward cache): close every stream now, and
// reopen them if the page is shown again from that cache. A page kept there with its streams
// open holds the browser's connections to the proxy, and after six of them every request to
// it waits. Widgets mounted the older way (data-sg-refund, mount) are unmounted and mounted
// again from their attributes, which stay the source of truth (the token included).
let parked = [];
window.addEventListener("pagehide", () => {
  for (const element of elements) element.suspend();
  if (!widget) return;
  parked = [...document.querySelectorAll("[data-sg-refund]")].filter(
    (slot) => !(slot.parentElement instanceof SgRefundElement) && !unmounted.has(slot),
  );
  for (const slot of parked) widget.unmount(slot);
});
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const element of elements) element.refresh(false);
  for (const slot of parked) widget.mount(slot, { onTokenExpired: expiredHandlers.get(slot) });
  parked = [];
});
