// What the reviewer page and the graph run page share: the signed-in key (this tab only, one
// storage key, so signed in on one page is signed in on the other), calls to the API with it, and
// building DOM from tenants' data as text only.

export const $ = (id) => document.getElementById(id);
export const KEY = "tiergate-key";
export const enc = encodeURIComponent;

export function key() { return sessionStorage.getItem(KEY); }

export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key()}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const message = (data && data.detail) || response.statusText || `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status, problem: data });
  }
  return data;
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else node[name] = value;
  }
  node.append(...children);
  return node;
}
