// The only module that talks to the server. Every number the UI shows comes from these calls.

async function request(method, url, body, signal) {
  const init = { method, headers: { Accept: "application/json" }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const d = data && data.detail;
    const msg = Array.isArray(d) ? d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ") : d || res.statusText;
    const err = new Error(String(msg));
    err.status = res.status;
    throw err;
  }
  return data;
}

export const api = {
  models: () => request("GET", "/api/models"),
  model: (name) => request("GET", `/api/models/${encodeURIComponent(name)}`),
  scenarios: () => request("GET", "/api/scenarios"),
  scenario: (id) => request("GET", `/api/scenarios/${encodeURIComponent(id)}`),
  predict: (model, image, signal) => request("POST", "/api/predict", { model, image }, signal),
  /** body: {model, input, target} | {scenario, input?, target?} | {network, params, seed, input, target} */
  trace: (body, signal) => request("POST", "/api/trace", body, signal),
};
