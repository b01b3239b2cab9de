// The refund widget's loader: the one script a host page adds.
//
//   <script type="module" src="https://refunds.example/sg-refund-embed.js"></script>
//   <div data-sg-refund data-session="ps_…" data-proxy="https://refunds.example"
//        data-token="…" data-lang="en"></div>
//
// It loads sg-refund.js and sg-refund_bg.wasm from its own folder; the widget then mounts into
// every [data-sg-refund] element. For elements added later:
//   import { mount } from ".../sg-refund-embed.js";  mount(element, { session, proxy, token, lang })
// or window.sgRefund.mount(element, options) after the `sg-refund:ready` event on document.

const base = new URL(".", import.meta.url);

function load() {
  if (window.sgRefund) return Promise.resolve(window.sgRefund);
  if (!window.__sgRefundLoading) {
    window.__sgRefundLoading = import(new URL("sg-refund.js", base).href)
      .then((glue) => glue.default({ module_or_path: new URL("sg-refund_bg.wasm", base) }))
      .then(() => window.sgRefund);
  }
  return window.__sgRefundLoading;
}

export const ready = load();
export async function mount(element, options = {}) {
  (await ready).mount(element, options);
}
export async function unmount(element) {
  (await ready).unmount(element);
}
