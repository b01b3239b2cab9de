// The plain HTML host's own script (a file, not inline: the proxy's Content-Security-Policy
// allows no inline script it does not know).
import { fetchToken, locale, params, proxy } from "../shared/demo-backend.js";

window.sgRefund.init({ proxy, locale, fetchToken });
const session = params.get("session");
if (session) document.getElementById("slot").append(window.sgRefund.create(session));
// The host reacts to the widget's events: settled refunds go into its own list, and
// every event is logged (type and detail) below.
document.addEventListener("sg-refund:settled", (event) => {
  const item = document.createElement("li");
  item.textContent = `${event.detail.state} ${event.detail.amount} ${event.detail.currency}`;
  document.querySelector("[data-testid=host-settled]").append(item);
});
for (const type of ["ready", "submitted", "settled", "error"]) {
  document.addEventListener(`sg-refund:${type}`, (event) => {
    if (!event.detail) return; // document's own "the code has loaded" ready
    const item = document.createElement("li");
    item.dataset.type = type;
    item.textContent = `${type} ${JSON.stringify(event.detail)}`;
    document.querySelector("[data-testid=host-events]").append(item);
  });
}
