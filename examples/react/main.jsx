// A React host: the merchant's admin app embedding the refund widget as <sg-refund>.
// The page loads /sg-refund-embed.js first (index.html), so window.sgRefund.init is there.
import { StrictMode, useEffect, useRef, useState } from "react";
import { createRoot } from "react-dom/client";
import { fetchToken, locale, params, proxy } from "../shared/demo-backend.js";

window.sgRefund.init({
  proxy,
  fetchToken,
  locale,
  appearance: { accent: "#0f766e", radius: "12px" },
});

// One hook per event: React 19 passes attributes and properties to custom elements, and
// listeners are added on the element itself.
function useWidgetEvent(ref, name, handler) {
  useEffect(() => {
    const element = ref.current;
    const listener = (event) => handler(event.detail);
    element.addEventListener(name, listener);
    return () => element.removeEventListener(name, listener);
  }, [ref, name, handler]);
}

function RefundWidget({ session, onSettled }) {
  const ref = useRef(null);
  useWidgetEvent(ref, "sg-refund:settled", onSettled);
  return <sg-refund ref={ref} session={session} data-testid="host-widget" />;
}

function App() {
  const [session, setSession] = useState(params.get("session") || "");
  const [settled, setSettled] = useState([]);
  const onSettled = useRef((detail) => setSettled((list) => [...list, detail])).current;
  return (
    <main>
      <h1>Orders — React host</h1>
      <label>
        Payment <input data-testid="host-session" value={session} onChange={(e) => setSession(e.target.value.trim())} />
      </label>
      {session && <RefundWidget key="widget" session={session} onSettled={onSettled} />}
      <h2>Settled refunds</h2>
      <ul data-testid="host-settled">
        {settled.map((d) => (
          <li key={d.attemptId || d.refundId}>
            {d.state} {d.amount} {d.currency} {d.refundId || ""}
          </li>
        ))}
      </ul>
    </main>
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
