// What every example host shares: where the proxy is, and the merchant's backend minting an
// agent token. Here the demo proxy's POST /demo/token stands in for that backend; a real host
// calls its own, which holds the token secret.
export const params = new URLSearchParams(location.search);
export const proxy = params.get("proxy") || location.origin;
export const locale = params.get("lang") === "ru" ? "ru" : "en";
const agent = params.get("agent") || "ada@acme.example";

export async function fetchToken() {
  const response = await fetch(`${proxy}/demo/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ agent }),
  });
  if (!response.ok) throw new Error(`token: HTTP ${response.status}`);
  return (await response.json()).token;
}
