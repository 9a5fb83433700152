// tiergate's graph run page, /ui/run?graph=ID&run=RUN_ID: the run's nodes drawn in layers (a
// node's layer is one more than the deepest of what it needs), an edge from each needed node to
// its dependent, each node coloured by its status; the run's status, error and output, and each
// node's reason. It refreshes every second while the run is running or waiting for a person.
// Clicking a node shows its execution (status, tier, output or error, logs) beside the graph.
//
// It signs in with the reviewer page's key (same storage, this tab only). Runs and executions need
// role invoke; what each node needs comes from the graph's definition, which needs role deploy:
// without it the nodes are drawn without edges, and the page says why.
//
// Node names, outputs, errors and logs are tenants' data: they reach the page as text and
// attribute values only (textContent, setAttribute), never as markup.

import { $, KEY, api as call, el, enc, key } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["pending", "running", "completed", "failed", "skipped", "reused", "awaiting_human"];
const LIVE = new Set(["running", "awaiting_human"]);
const POLL_MS = 1000;
const BOX = { width: 220, height: 84, gapX: 72, gapY: 22, pad: 16 };
const GRAPH_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ID = /^[A-Za-z0-9_-]{1,128}$/;

const params = new URLSearchParams(location.search);
const graphId = params.get("graph") || "";
const runId = params.get("run") || "";
const definitions = new Map(); // version → { definition (null when unreadable), note }
let run = null;
let selected = null; // the node whose execution the panel shows
let panelShows = null; // what the panel was drawn from, to draw it again only when that changes
let panelToken = 0;
let timer = null;
let pollFailed = false;


function api(path) { return call("GET", path); }

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "ok";
}

function explain(error) {
  if (error.status === 403) return `This key cannot read the run (it needs role invoke): ${error.message}`;
  return error.message;
}

const label = (status) => String(status).replaceAll("_", " ");
const clip = (text, most) => (text.length > most ? `${text.slice(0, most - 1)}…` : text);
const wanted = () => GRAPH_ID.test(graphId) && ID.test(runId);

function functionOf(node) {
  return node.function_version == null ? node.function : `${node.function}@${node.function_version}`;
}

function formatMs(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function duration(node) {
  if (!node.started_at) return "—";
  const end = node.ended_at ? Date.parse(node.ended_at) : Date.now();
  const ms = Math.max(0, end - Date.parse(node.started_at));
  return node.ended_at ? formatMs(ms) : `${formatMs(ms)} so far`;
}

// --- signing in and loading -------------------------------------------------------------------

function signedIn() {
  $("signin").hidden = true;
  $("who").hidden = false;
  $("who-text").textContent = "signed in";
}

async function signIn(value) {
  sessionStorage.setItem(KEY, value);
  if (!wanted()) { signedIn(); return; } // checked when a run is opened
  try {
    await load();
    signedIn();
    say("");
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(KEY);
      say(`Cannot sign in: ${error.message}`, true);
    } else {
      signedIn();
      say(explain(error), true);
    }
  }
}

async function load() {
  const body = await api(`/graphs/${enc(graphId)}/runs/${enc(runId)}`);
  await readDefinition(body.version);
  run = body;
  draw();
  schedule();
}

// What each node needs, for the run's version of the graph; read once per version.
async function readDefinition(version) {
  if (definitions.has(version)) return;
  let definition = null;
  let note = "";
  try {
    definition = await api(`/graphs/${enc(graphId)}?version=${enc(String(version))}`);
  } catch (error) {
    if (error.status === undefined || error.status === 401) throw error;
    note = error.status === 403
      ? "This key cannot read the graph's definition (that needs role deploy), so what each " +
        "node needs is unknown: the nodes are drawn without edges."
      : `The graph's definition cannot be read (${error.message}), so the nodes are drawn ` +
        "without edges.";
  }
  definitions.set(version, { definition, note });
}

function schedule() {
  clearTimeout(timer);
  timer = run && LIVE.has(run.status) ? setTimeout(poll, POLL_MS) : null;
}

async function poll() {
  timer = null;
  try {
    await load();
    if (pollFailed) say("");
    pollFailed = false;
  } catch (error) {
    pollFailed = true;
    say(`Cannot refresh: ${explain(error)}`, true);
    if (![401, 403, 404].includes(error.status)) timer = setTimeout(poll, 3 * POLL_MS);
  }
}

// --- drawing ----------------------------------------------------------------------------------

function draw() {
  const { definition, note } = definitions.get(run.version);
  $("pick").hidden = true;
  $("run").hidden = false;
  $("run-title").textContent = `${run.graph_id} v${run.version} · run ${run.run_id}`;
  $("run-status").textContent = label(run.status);
  $("run-status").dataset.status = run.status;
  const meta = [`started ${run.created_at}`];
  if (run.ended_at) meta.push(`ended ${run.ended_at}`);
  if (run.base_run) meta.push(`base run ${run.base_run}`);
  if (run.trace_id) meta.push(`trace ${run.trace_id}`);
  if (LIVE.has(run.status)) meta.push("refreshing every second");
  $("run-meta").textContent = meta.join(" · ");
  $("run-error").hidden = !run.error;
  $("run-error").textContent = run.error || "";
  $("graph-note").hidden = !note;
  $("graph-note").textContent = note;
  let output = JSON.stringify(run.output, null, 2);
  if (run.output == null && LIVE.has(run.status)) output = "(not yet: the run has not ended)";
  else if (run.output == null && run.status !== "completed") output = `(none: the run ${run.status})`;
  $("run-output").textContent = output;
  const shape = layout(definition);
  drawGraph(shape);
  drawTable(shape.names);
  showPanel();
}

// Columns of nodes: a node's layer is 0 when it needs nothing, else 1 + the deepest of what it
// needs. Within a layer, nodes sit near the middle of what they need (fewer crossing edges).
function layout(definition) {
  const inRun = (name) => Object.hasOwn(run.nodes, name);
  const order = definition && Array.isArray(definition.order) ? definition.order.filter(inRun) : [];
  const names = [...order, ...Object.keys(run.nodes).filter((name) => !order.includes(name))];
  const needs = new Map();
  for (const name of names) {
    const declared = definition && Object.hasOwn(definition.nodes || {}, name)
      ? definition.nodes[name].needs : [];
    needs.set(name, Array.isArray(declared) ? declared.filter(inRun) : []);
  }
  const layer = new Map();
  const depth = (name, seen = new Set()) => {
    if (layer.has(name)) return layer.get(name);
    if (seen.has(name)) return 0; // a cycle cannot be deployed; never loop on one anyway
    seen.add(name);
    const value = needs.get(name).reduce((deepest, need) => Math.max(deepest, depth(need, seen) + 1), 0);
    layer.set(name, value);
    return value;
  };
  const columns = [];
  for (const name of names) (columns[depth(name)] ||= []).push(name);
  const tallest = Math.max(1, ...columns.map((column) => column.length));
  const slot = new Map();
  columns.forEach((column, index) => {
    if (index > 0) {
      const middle = (name) => {
        const slots = needs.get(name).map((need) => slot.get(need));
        return slots.reduce((sum, value) => sum + value, 0) / slots.length;
      };
      column.sort((a, b) => middle(a) - middle(b)); // stable: ties keep the dependency order
    }
    const offset = (tallest - column.length) / 2;
    column.forEach((name, row) => slot.set(name, offset + row));
  });
  const { width, height, gapX, gapY, pad } = BOX;
  const position = new Map();
  columns.forEach((column, index) => {
    for (const name of column) {
      position.set(name, { x: pad + index * (width + gapX), y: pad + slot.get(name) * (height + gapY) });
    }
  });
  return {
    names: columns.flat(),
    needs,
    position,
    width: 2 * pad + columns.length * width + Math.max(0, columns.length - 1) * gapX,
    height: 2 * pad + tallest * height + (tallest - 1) * gapY,
  };
}

function drawGraph({ names, needs, position, width, height }) {
  const canvas = $("graph");
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("[data-node]") : null;
  const refocus = focused && canvas.contains(focused) ? focused.dataset.node : null;
  canvas.setAttribute("viewBox", `0 0 ${width} ${height}`);
  canvas.setAttribute("width", width);
  canvas.setAttribute("height", height);
  const arrow = svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
  }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
  const edges = svg("g", { class: "edges" });
  for (const name of names) {
    for (const need of needs.get(name)) {
      const from = position.get(need);
      const to = position.get(name);
      const x1 = from.x + BOX.width;
      const y1 = from.y + BOX.height / 2;
      const x2 = to.x - 2;
      const y2 = to.y + BOX.height / 2;
      const bend = BOX.gapX / 2;
      edges.append(svg("path", {
        class: "edge", "data-from": need, "data-to": name, "data-status": run.nodes[name].status,
        d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
        "marker-end": "url(#arrow)",
      }));
    }
  }
  const nodes = svg("g", { class: "nodes" });
  for (const name of names) {
    const node = run.nodes[name];
    const at = position.get(name);
    const lines = [name, label(node.status), functionOf(node), duration(node)];
    if (node.reason) lines.push(node.reason);
    if (node.error) lines.push(node.error);
    const group = svg("g", {
      class: name === selected ? "node selected" : "node",
      "data-node": name, "data-status": node.status,
      transform: `translate(${at.x} ${at.y})`,
      tabindex: 0, role: "button", "aria-label": `${name}: ${label(node.status)}`,
    },
    svg("title", {}, lines.join("\n")),
    svg("rect", { width: BOX.width, height: BOX.height, rx: 8 }),
    svg("text", { x: 12, y: 22, class: "name" }, clip(name, 24)),
    svg("text", { x: 12, y: 40, class: "status" }, label(node.status)),
    svg("text", { x: 12, y: 57 }, clip(functionOf(node), 30)),
    svg("text", { x: 12, y: 74, class: "duration" }, duration(node)));
    group.addEventListener("click", () => select(name));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(name); }
    });
    nodes.append(group);
  }
  canvas.replaceChildren(svg("defs", {}, arrow), edges, nodes);
  if (refocus) {
    const again = [...nodes.children].find((group) => group.dataset.node === refocus);
    if (again) again.focus();
  }
}

function drawTable(names) {
  const body = $("nodes").querySelector("tbody");
  body.replaceChildren();
  for (const name of names) {
    const node = run.nodes[name];
    const why = el("td", {}, node.reason || "");
    if (node.error) why.append(el("div", { className: "node-error" }, node.error));
    const row = el("tr", { dataset: { node: name } },
      el("td", {}, name),
      el("td", {}, el("span", { className: "swatch", dataset: { status: node.status } }), label(node.status)),
      el("td", {}, functionOf(node)),
      el("td", {}, duration(node)),
      why);
    if (name === selected) row.classList.add("selected");
    row.addEventListener("click", () => select(name));
    body.append(row);
  }
}

function drawLegend() {
  $("legend").replaceChildren(...STATUSES.map((status) => el("li", {},
    el("span", { className: "swatch", dataset: { status } }), label(status))));
}

// --- the side panel: one node and its execution -------------------------------------------------

function select(name) {
  selected = name;
  panelShows = null;
  for (const item of document.querySelectorAll("[data-node]")) {
    item.classList.toggle("selected", item.dataset.node === name);
  }
  showPanel();
}

function facts(list, pairs) {
  list.replaceChildren();
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    list.append(el("dt", {}, term), el("dd", {}, String(value)));
  }
}

function showPanel() {
  if (selected === null || !run || !Object.hasOwn(run.nodes, selected)) {
    $("panel").hidden = true;
    return;
  }
  const node = run.nodes[selected];
  const shows = JSON.stringify([selected, node.status, node.execution_id, node.ended_at]);
  if (shows === panelShows) return;
  panelShows = shows;
  $("panel").hidden = false;
  $("panel-title").textContent = selected;
  facts($("panel-node"), [
    ["Status", label(node.status)], ["Function", functionOf(node)], ["Reason", node.reason],
    ["Error", node.error], ["Started", node.started_at], ["Ended", node.ended_at],
  ]);
  showExecution(node);
}

async function showExecution(node) {
  const token = ++panelToken;
  for (const id of ["exec-output-box", "exec-error-box", "exec-logs-box"]) $(id).hidden = true;
  $("exec-facts").replaceChildren();
  const state = $("exec-state");
  if (!node.execution_id) {
    state.textContent = node.status === "pending" ? "Not started yet." : "None: this node did not run.";
    return;
  }
  if (!ID.test(node.execution_id)) { state.textContent = "Not a valid execution id."; return; }
  state.textContent = `Loading execution ${node.execution_id} …`;
  let execution;
  try {
    execution = await api(`/executions/${enc(node.execution_id)}`);
  } catch (error) {
    if (token === panelToken) state.textContent = `Cannot read execution ${node.execution_id}: ${error.message}`;
    return;
  }
  if (token !== panelToken) return; // another node was picked meanwhile
  state.replaceChildren(`${execution.execution_id}` +
    (node.status === "reused" ? " (reused: it ran for an earlier run)" : ""));
  if (execution.task_id && execution.status === "awaiting_human") {
    state.append(" · ", el("a", { href: "/ui/" }, "answer it on the reviewer page"));
  }
  const metrics = execution.metrics || {};
  facts($("exec-facts"), [
    ["Status", label(execution.status)], ["Tier", execution.tier],
    ["Function", `${execution.function_id}@${execution.version}`],
    ["Duration", typeof metrics.duration_ms === "number" ? formatMs(metrics.duration_ms) : null],
    ["Attempts", Array.isArray(execution.attempts) ? execution.attempts.length : null],
    ["Task", execution.task_id], ["Started", execution.started_at], ["Ended", execution.ended_at],
  ]);
  if (execution.output !== undefined && execution.output !== null) {
    $("exec-output").textContent = JSON.stringify(execution.output, null, 2);
    $("exec-output-box").hidden = false;
  }
  if (execution.error) {
    const details = execution.details ? `\n${JSON.stringify(execution.details, null, 2)}` : "";
    $("exec-error").textContent = String(execution.error) + details;
    $("exec-error-box").hidden = false;
  }
  const logs = Array.isArray(execution.logs) ? execution.logs : [];
  $("exec-logs").replaceChildren(...logs.map((line) => el("li", {},
    `${line.ts || ""} ${line.stream || ""}${line.level ? ` ${line.level}` : ""}: ${line.message}`)));
  $("exec-logs-box").hidden = logs.length === 0;
}

// --- start ------------------------------------------------------------------------------------

drawLegend();
$("signin").addEventListener("submit", (event) => { event.preventDefault(); signIn($("key").value); });
$("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
$("panel-close").addEventListener("click", () => {
  selected = null;
  panelShows = null;
  for (const item of document.querySelectorAll("[data-node].selected")) item.classList.remove("selected");
  $("panel").hidden = true;
});

if (!wanted()) {
  $("pick").hidden = false;
  $("pick-graph").value = graphId;
  $("pick-run").value = runId;
  if (graphId || runId) say("That is not a graph id and a run id.", true);
}
if (key()) signIn(key());
else if (wanted()) say("Sign in with an API key (role invoke; role deploy too to draw the edges).");
