// Types of the refund widget's embedding API: what `sg-refund-embed.js` gives a host page.
// Hand-written beside the script and checked in CI by compiling a file that uses every option
// (`examples/typecheck/uses-every-option.ts`, `tsc --noEmit --strict`).
//
// Use it from TypeScript with `/// <reference path="./sg-refund.d.ts" />` (or list it in
// tsconfig's "files"): it declares `window.sgRefund`, the `<sg-refund>` element and its events,
// and the ES module `…/sg-refund-embed.js`.

/** An amount in minor units (cents for USD, yen for JPY, fils for KWD) — never a float. */
export type MinorUnits = number;

/** Lower-case ISO 4217 code, as Smart Glocal writes it: `"usd"`. */
export type CurrencyCode = string;

/** Where a refund stands. */
export type RefundState =
  | "awaiting_approval"
  | "pending"
  | "unknown"
  | "in_progress"
  | "accepted"
  | "failed";

/** The languages the widget speaks. Anything else falls back to English. */
export type Locale = "en" | "ru";

/**
 * The widget's look. Each key sets one CSS custom property on the element (the same ones a
 * stylesheet can set on any ancestor); values are CSS values.
 */
export interface Appearance {
  /** Buttons, links, focus ring default: `--sgr-accent`. */
  accent?: string;
  /** Text on accent-coloured buttons: `--sgr-accent-text`. */
  accentText?: string;
  /** The widget's background: `--sgr-bg`. */
  background?: string;
  /** Panels inside it (the confirmation): `--sgr-surface`. */
  surface?: string;
  /** Body text: `--sgr-fg`. */
  text?: string;
  /** Secondary text: `--sgr-muted`. */
  muted?: string;
  /** Borders of the widget and its fields: `--sgr-border`. */
  border?: string;
  /** Errors: `--sgr-danger`. */
  danger?: string;
  /** Accepted refunds: `--sgr-success`. */
  success?: string;
  /** Refunds in progress, disputes: `--sgr-warning`. */
  warning?: string;
  /** The keyboard focus ring: `--sgr-focus`. */
  focus?: string;
  /** Corner radius, e.g. `"12px"`: `--sgr-radius`. */
  radius?: string;
  /** Font stack: `--sgr-font`. */
  font?: string;
  /** The base gap between parts, e.g. `"12px"` (default `16px`): `--sgr-spacing`. */
  spacing?: string;
  /** `"dark"` or `"light"` whatever the system prefers; `"auto"` (default) follows it. */
  theme?: "auto" | "light" | "dark";
}

export interface InitOptions {
  /** The proxy's origin, e.g. `"https://refunds.example"`. Default: the page's own origin. */
  proxy?: string;
  /**
   * Mints an agent token (the merchant's backend does, with the proxy's token secret). Called
   * when the first widget starts and whenever the proxy answers `token_expired`; concurrent
   * needs share one call. A rejection shows the widget's not-signed-in error and fires
   * `sg-refund:error` with code `token_unavailable`.
   */
  fetchToken?: () => Promise<string>;
  /** The widget's language where an element has no `lang` attribute. */
  locale?: Locale;
  appearance?: Appearance;
}

/** What `init` returns. */
export interface SgRefundInstance {
  /** A new `<sg-refund>` for payment `session`, to be placed by the host. */
  create(session: string, attributes?: Partial<Record<"proxy" | "lang" | "token", string>>): SgRefundElement;
  /** Changes the locale and/or the appearance of every widget, live. */
  update(options: Pick<InitOptions, "locale" | "appearance">): void;
}

/** The older options of `mount`: an element's `data-*` attributes. */
export interface MountOptions {
  session?: string;
  proxy?: string;
  token?: string;
  lang?: string;
  /** Called with the element when its token has expired; set a new `data-token` on it. */
  onTokenExpired?: (element: HTMLElement) => void;
}

/** `detail` of `sg-refund:ready`: the payment is on screen. */
export interface ReadyDetail {
  session: string;
  amount: MinorUnits;
  currency: CurrencyCode;
  /** What can still be refunded: 0 where nothing can (a disputed, failed or fully refunded
   *  payment), as the widget shows it. */
  remaining: MinorUnits;
}

/** `detail` of `sg-refund:submitted`: the proxy took (or already had) the refund. */
export interface SubmittedDetail {
  session: string;
  /** The proxy's id for this attempt. */
  attemptId: string | null;
  /** Smart Glocal's refund id, once known. */
  refundId: string | null;
  amount: MinorUnits;
  currency: CurrencyCode;
  state: RefundState;
}

/** `detail` of `sg-refund:settled`: a refund reached its final state (fired once per refund). */
export interface SettledDetail extends SubmittedDetail {
  state: "accepted" | "failed";
  /** Why it failed (the proxy's error code), when it did. */
  errorCode: string | null;
}

/** `detail` of `sg-refund:error`. */
export interface ErrorDetail {
  session: string;
  /**
   * The proxy's error code (`exceeds_remaining`, `unauthenticated`, …, listed in `docs/CONTRACTS.md`),
   * or `network` (no answer), `bad_response`, `token_unavailable` (`fetchToken` rejected),
   * `load_failed` (the widget's code could not run: WebAssembly blocked, the browser too old,
   * its files not fetched).
   */
  code: string;
  /** The HTTP status, 0 when there was none. */
  status: number;
  /** With `token_unavailable` and `load_failed`: what failed, in the browser's words. */
  message?: string;
}

export interface SgRefundEventMap {
  "sg-refund:ready": CustomEvent<ReadyDetail>;
  "sg-refund:submitted": CustomEvent<SubmittedDetail>;
  "sg-refund:settled": CustomEvent<SettledDetail>;
  "sg-refund:error": CustomEvent<ErrorDetail>;
  /** Only where neither `fetchToken` nor a `token` attribute answers it: set `data-token`. */
  "sg-refund:token-expired": CustomEvent<null>;
}

/** `<sg-refund session="ps_…" proxy="https://…" lang="ru" token="…">`. */
export interface SgRefundElement extends HTMLElement {
  /** The payment (Smart Glocal session id); changing it loads that payment. */
  session: string;
  /** The proxy's origin; falls back to `init`'s, then the page's. */
  proxy: string;
  /** The language; changing it switches the widget. */
  lang: string;
  /** An agent token given by the host (the `token` attribute; `null` removes it, and
   *  `fetchToken` answers instead). */
  token: string | null;
  addEventListener<K extends keyof SgRefundEventMap>(
    type: K,
    listener: (this: SgRefundElement, event: SgRefundEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof SgRefundEventMap>(
    type: K,
    listener: (this: SgRefundElement, event: SgRefundEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** `window.sgRefund`. `mount` / `unmount` / `mountAll` are there once `ready` resolves. */
export interface SgRefundApi {
  init(options?: InitOptions): SgRefundInstance;
  update: SgRefundInstance["update"];
  create: SgRefundInstance["create"];
  ready: Promise<SgRefundApi>;
  mount?(element: HTMLElement, options?: MountOptions): void;
  unmount?(element: Element): void;
  mountAll?(): void;
}

declare global {
  interface Window {
    sgRefund: SgRefundApi;
  }
  interface HTMLElementTagNameMap {
    "sg-refund": SgRefundElement;
  }
  interface GlobalEventHandlersEventMap extends Omit<SgRefundEventMap, "sg-refund:ready"> {
    /** From an element: its payment is on screen. On `document` itself (its `target`), once:
     *  the widget's code loaded, with `detail` `null`. */
    "sg-refund:ready": CustomEvent<ReadyDetail | null>;
  }
}

/** The ES module itself, imported by URL: `import { init } from "https://…/sg-refund-embed.js"`. */
export declare function init(options?: InitOptions): SgRefundInstance;
export declare const ready: Promise<SgRefundApi>;
export declare function mount(element: HTMLElement, options?: MountOptions): Promise<void>;
export declare function unmount(element: Element): Promise<void>;
