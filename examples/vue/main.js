// A Vue host: the merchant's admin app embedding the refund widget as <sg-refund>.
// Render functions, so no template compiler is needed at run time. Vue sets `session` as a
// property on the element (the element reflects it to its attribute).
import { createApp, h, onBeforeUnmount, onMounted, ref } from "vue";
import { fetchToken, locale, params, proxy } from "../shared/demo-backend.js";

window.sgRefund.init({
  proxy,
  fetchToken,
  locale,
  appearance: { accent: "#7c3aed", radius: "4px", theme: "light" },
});

const RefundWidget = {
  props: { session: String },
  emits: ["settled"],
  setup(props, { emit }) {
    const element = ref(null);
    const listener = (event) => emit("settled", event.detail);
    onMounted(() => element.value.addEventListener("sg-refund:settled", listener));
    onBeforeUnmount(() => element.value.removeEventListener("sg-refund:settled", listener));
    return () => h("sg-refund", { ref: element, session: props.session, "data-testid": "host-widget" });
  },
};

createApp({
  setup() {
    const session = ref(params.get("session") || "");
    const settled = ref([]);
    return () =>
      h("main", [
        h("h1", "Orders — Vue host"),
        h("label", [
          "Payment ",
          h("input", {
            "data-testid": "host-session",
            value: session.value,
            onInput: (e) => (session.value = e.target.value.trim()),
          }),
        ]),
        session.value
          ? h(RefundWidget, {
              session: session.value,
              onSettled: (detail) => settled.value.push(detail),
            })
          : null,
        h("h2", "Settled refunds"),
        h(
          "ul",
          { "data-testid": "host-settled" },
          settled.value.map((d) =>
            h("li", { key: d.attemptId || d.refundId }, `${d.state} ${d.amount} ${d.currency} ${d.refundId || ""}`),
          ),
        ),
      ]);
  },
}).mount("#app");
