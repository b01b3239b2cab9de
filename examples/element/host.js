// The plain HTML host's own script (a file, not inline: the proxy's Content-Security-Policy
// allows no inline script it does not know).
const params = new URLSearchParams(location.search);
const proxy = params.get("proxy") || location.origin;
// The merchant's backend mints agent tokens; the demo proxy's POST /demo/token stands in.
window.sgRefund.init({
  proxy,
  locale: params.get("lang") === "ru" ? "ru" : "en",
  fetchToken: async () => {
    const response = await fetch(`${proxy}/demo/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ agent: params.get("agent") || "ada@acme.example" }),
    });
    if (!response.ok) throw new Error(`token: HTTP ${response.status}`);
    return (await response.json()).token;
  },
});
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
