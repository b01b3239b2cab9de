// Compiled by `cargo xtask test` with `tsc --noEmit --strict`: a TypeScript host using every
// option, element attribute and event detail of sg-refund.d.ts. A change to the embedding API
// that the types do not follow (or the reverse) fails here.
import type {
  Appearance,
  ErrorDetail,
  InitOptions,
  ReadyDetail,
  SettledDetail,
  SgRefundElement,
  SubmittedDetail,
} from "../../frontend/embed/sg-refund";

const appearance: Appearance = {
  accent: "#0f766e",
  accentText: "#ffffff",
  background: "#ffffff",
  surface: "#f4f5f7",
  text: "#1a1c20",
  muted: "#4b5260",
  border: "#8a909c",
  danger: "#b3261e",
  success: "#1b6e36",
  warning: "#8a5300",
  focus: "#1d4ed8",
  radius: "12px",
  font: "Inter, system-ui, sans-serif",
  spacing: "0.75rem",
  theme: "dark",
};

const options: InitOptions = {
  proxy: "https://refunds.example",
  fetchToken: async (): Promise<string> => {
    const response = await fetch("/my-backend/refund-token", { method: "POST" });
    return ((await response.json()) as { token: string }).token;
  },
  locale: "ru",
  appearance,
};

const instance = window.sgRefund.init(options);
instance.update({ locale: "en", appearance: { theme: "auto" } });

// The element, made by the instance or found in the page, typed either way.
const created: SgRefundElement = instance.create("ps_123", { lang: "en" });
const found: SgRefundElement | null = document.querySelector("sg-refund");
const element: SgRefundElement = found ?? created;
element.session = "ps_456";
element.proxy = "https://refunds.example";
element.lang = "ru";
element.token = "eyJ…";
element.token = null; // fetchToken answers instead
document.body.append(element);

element.addEventListener("sg-refund:ready", (event) => {
  const detail: ReadyDetail = event.detail;
  const left: number = detail.remaining + detail.amount;
  console.log(detail.session, detail.currency, left);
});
element.addEventListener("sg-refund:submitted", (event) => {
  const detail: SubmittedDetail = event.detail;
  console.log(detail.attemptId, detail.refundId, detail.amount, detail.currency, detail.state);
});
element.addEventListener("sg-refund:settled", (event) => {
  const detail: SettledDetail = event.detail;
  if (detail.state === "failed") console.log(detail.errorCode);
});
element.addEventListener("sg-refund:error", (event) => {
  const detail: ErrorDetail = event.detail;
  console.log(detail.code, detail.status, detail.message ?? "");
});
// Events bubble: a listener on document is typed too.
document.addEventListener("sg-refund:settled", (event) => console.log(event.detail.refundId));
// On document, `ready` is also the widget's code having loaded, with `detail` null.
document.addEventListener("sg-refund:ready", (event) => {
  const detail: ReadyDetail | null = event.detail;
  console.log(detail === null ? "loaded" : detail.session);
});

// The older way: mount into any element.
window.sgRefund.ready.then((api) => {
  const div = document.createElement("div");
  api.mount?.(div, {
    session: "ps_789",
    proxy: "https://refunds.example",
    token: "…",
    lang: "en",
    onTokenExpired: (el) => el.setAttribute("data-token", "…"),
  });
  api.unmount?.(div);
  api.mountAll?.();
});
