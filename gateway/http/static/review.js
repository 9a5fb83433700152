// tiergate's reviewer page: sign in with an API key (role review), pick a pending task, read its
// input, instructions, earlier attempts and their logs, claim it, and answer with a form built
// from the function's output schema (or as raw JSON), or reject it with a reason. The key stays in
// this tab only (the graph run page shares it).
//
// The queue and the open task refresh by themselves every POLL_MS: another reviewer's claim shows
// up (and disables the answer) without a reload. A refresh never rebuilds the form being filled in.
//
// Tasks' inputs, outputs, errors and logs are tenants' data: they reach the page as text only
// (textContent, createElement), never as markup.

import { $, KEY, api, el, enc, key } from "./common.js";

const POLL_MS = 3000;
const WAITING_ROLES = ["review", "admin"];

let me = null; // GET /whoami: {key_id, name, tenant, roles}
let current = null; // the open task, as GET /tasks/{id} gave it (claim fields kept up to date)
let view = "signin"; // "signin" | "queue" | "task"
let nav = 0; // bumped on every change of view: a refresh that started before is dropped
let timer = null;
let pollFailed = false;


function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = text ? (isError ? "error" : "ok") : "";
}


// --- times: relative in the text, local and ISO-8601 in the title ----------------------------

function relative(iso) {
  const ms = Date.parse(iso) - Date.now();
  const seconds = Math.abs(ms) / 1000;
  if (seconds < 45) return ms <= 0 ? "just now" : "in a few seconds";
  let amount;
  if (seconds < 90 * 60) amount = `${Math.max(1, Math.round(seconds / 60))} min`;
  else if (seconds < 36 * 3600) amount = `${Math.round(seconds / 3600)} h`;
  else {
    const days = Math.round(seconds / 86400);
    amount = `${days} ${days === 1 ? "day" : "days"}`;
  }
  return ms <= 0 ? `${amount} ago` : `in ${amount}`;
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function when(iso, text = relative) {
  if (!iso) return document.createTextNode("—");
  return el("time", { dateTime: iso, title: `${new Date(iso).toLocaleString()} (${iso})` },
    text(iso));
}

// --- who holds a task -------------------------------------------------------------------------

function claimOf(task) {
  if (!task.claimed_by || !task.claimed_until || Date.parse(task.claimed_until) <= Date.now()) {
    return null;
  }
  return {
    mine: me !== null && task.claimed_by_id === me.key_id,
    name: task.claimed_by,
    until: task.claimed_until,
  };
}

function whoText(person) {
  const roles = [...person.roles].sort().join(", ") || "none";
  return `Signed in as ${person.name || person.key_id} (tenant ${person.tenant}, roles ${roles})`;
}

// --- signing in and out -----------------------------------------------------------------------

function show(section) {
  view = section;
  nav += 1;
  $("signin-panel").hidden = section !== "signin";
  for (const id of ["queue", "task"]) $(id).hidden = id !== section;
}

async function signIn(value) {
  say("");
  sessionStorage.setItem(KEY, value);
  let person;
  try {
    person = await api("GET", "/whoami");
  } catch (error) {
    sessionStorage.removeItem(KEY);
    say(`Cannot sign in: ${error.message}`, true);
    return;
  }
  if (!person.roles.some((role) => WAITING_ROLES.includes(role))) {
    sessionStorage.removeItem(KEY);
    say(`Cannot sign in: this key (${person.name || person.key_id}) has the roles ` +
      `${person.roles.join(", ") || "none"}; the reviewer page needs review.`, true);
    return;
  }
  me = person;
  $("key").value = "";
  $("who-text").textContent = whoText(me);
  $("who").hidden = false;
  try {
    await loadQueue();
    say(""); // a good sign-in leaves no earlier error behind
  } catch (error) {
    show("queue");
    say(`Cannot load the tasks: ${error.message}`, true);
  }
  schedule();
}

function signOut(message = "Signed out.", isError = false) {
  sessionStorage.removeItem(KEY);
  clearTimeout(timer);
  timer = null;
  me = null;
  current = null;
  $("who").hidden = true;
  $("who-text").textContent = "";
  $("tasks").querySelector("tbody").replaceChildren();
  show("signin");
  say(message, isError);
  $("key").focus();
}

// --- the queue --------------------------------------------------------------------------------

async function fetchQueue() {
  const { tasks } = await api("GET", "/tasks?status=pending");
  return tasks;
}

function renderQueue(tasks) {
  const body = $("tasks").querySelector("tbody");
  body.replaceChildren();
  for (const task of tasks) {
    const claim = claimOf(task);
    let holder = "—";
    if (claim) holder = claim.mine ? "you" : claim.name;
    const row = el("tr", { dataset: { task: task.id } },
      el("td", {}, task.function_id),
      el("td", {}, when(task.created_at)),
      el("td", {}, when(task.expires_at)),
      el("td", { className: claim ? "claimed" : "" }, holder),
      el("td", {}, el("button", { type: "button", textContent: "Open" })));
    if (claim && !claim.mine) row.classList.add("held");
    row.addEventListener("click", () => openTask(task.id).catch(problem));
    body.append(row);
  }
  $("empty").hidden = tasks.length > 0;
  $("tasks").hidden = tasks.length === 0;
}

async function loadQueue() {
  const tasks = await fetchQueue();
  current = null;
  renderQueue(tasks);
  show("queue");
}

// --- one task ---------------------------------------------------------------------------------

async function openTask(id) {
  const task = await api("GET", `/tasks/${enc(id)}`);
  current = task;
  $("task-title").textContent = `${task.function_id} · task ${task.id}`;
  $("task-description").textContent = task.description || "";
  $("task-instructions").textContent = task.instructions || "(none)";
  $("task-input").textContent = JSON.stringify(task.input, null, 2);
  renderAttempts(task);
  renderLogs(task);
  buildForm(task.output_schema);
  $("answer-errors").replaceChildren();
  $("reject-reason").value = "";
  say("");
  show("task");
  renderTaskState();
  window.scrollTo(0, 0);
}

function renderAttempts(task) {
  const list = $("task-attempts");
  list.replaceChildren();
  for (const attempt of task.attempts) {
    const item = el("li", { className: "attempt", dataset: { status: attempt.status } },
      el("strong", {}, `${attempt.tier} #${attempt.attempt}`),
      ` ${attempt.status}`,
      attempt.duration_ms != null ? ` after ${Math.round(attempt.duration_ms)} ms` : "");
    if (attempt.code) item.append(` (${attempt.code})`);
    if (attempt.error) item.append(el("pre", { className: "attempt-error" }, attempt.error));
    list.append(item);
  }
  if (!task.attempts.length) list.append(el("li", {}, "none: this function goes straight to a person"));
}

function renderLogs(task) {
  const logs = task.logs || [];
  const list = $("task-logs");
  list.replaceChildren();
  for (const line of logs) {
    const item = el("li", { dataset: { stream: line.stream } });
    if (line.ts) item.append(el("time", { dateTime: line.ts, title: line.ts, className: "ts" }, clockSeconds(line.ts)), " ");
    item.append(el("span", { className: "stream" }, line.level || line.stream), " ",
      el("span", { className: "text" }, line.message));
    list.append(item);
  }
  const total = task.logs_total ?? logs.length;
  $("task-logs-note").textContent = total > logs.length
    ? `(the last ${logs.length} of ${total} lines)` : `(${total} ${total === 1 ? "line" : "lines"})`;
  $("task-logs-box").hidden = logs.length === 0;
}

function clockSeconds(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// The claim, the task's times and whether this reviewer may answer, from ``current``: drawn on
// opening, after a claim or release, and on every refresh (the form itself is left alone).
function renderTaskState() {
  const task = current;
  const times = $("task-times");
  times.replaceChildren("Created ", when(task.created_at), " · expires ", when(task.expires_at));
  const state = $("claim-state");
  state.replaceChildren();
  let open = task.status === "pending";
  const claim = open ? claimOf(task) : null;
  if (!open) {
    const by = task.answered_by ? ` by ${task.answered_by}` : "";
    state.textContent = task.status === "gone"
      ? "This task is gone: there is nothing left to answer."
      : `This task is ${task.status}${by}: there is nothing left to answer.`;
    state.className = "state closed";
  } else if (claim && claim.mine) {
    state.append("Claimed by you until ", when(claim.until, clock), " (", when(claim.until), ")");
    state.className = "state mine";
  } else if (claim) {
    state.append(`Claimed by ${claim.name} until `, when(claim.until, clock),
      `: you can answer once they release it or the claim runs out.`);
    state.className = "state held";
    open = false;
  } else {
    state.textContent = "Not claimed: claim it so that no one else answers it while you work.";
    state.className = "state free";
  }
  $("claim").hidden = Boolean(claim && claim.mine) || task.status !== "pending";
  $("claim").disabled = !open;
  $("release").hidden = !(claim && claim.mine);
  $("answer-fields").disabled = !open;
  $("reject-fields").disabled = !open;
}

async function refreshTask() {
  const token = nav;
  let task;
  try {
    task = await api("GET", `/tasks/${enc(current.id)}`);
  } catch (error) {
    if (token !== nav) return;
    if (error.status !== 404) throw error;
    current.status = "gone"; // deleted, or the key lost access
    renderTaskState();
    return;
  }
  if (token !== nav || !current || task.id !== current.id) return;
  current = { ...current, ...claimFields(task) };
  renderTaskState();
}

function claimFields(task) {
  const fields = ["status", "claimed_by", "claimed_by_id", "claimed_until", "answered_by",
    "expires_at"];
  return Object.fromEntries(fields.map((name) => [name, task[name]]));
}

// --- the answer form --------------------------------------------------------------------------

// A form for an object schema whose properties are strings, numbers, integers, booleans or
// enums; anything else is answered as raw JSON. Booleans and enums start unset (never a silent
// false or first value): an optional one left unset is left out of the answer, a required one
// must be chosen.
function formable(schema) {
  if (!schema || schema.type !== "object" || !schema.properties) return false;
  return Object.values(schema.properties).every(
    (p) => p && (p.enum || ["string", "number", "integer", "boolean"].includes(p.type)));
}

function choices(prop) {
  if (prop.enum) return prop.enum.map((value) => [String(value), JSON.stringify(value)]);
  return [["Yes", "true"], ["No", "false"]];
}

function buildForm(schema) {
  const fields = $("fields");
  fields.replaceChildren();
  const useForm = formable(schema);
  $("raw-toggle").checked = !useForm;
  $("raw-toggle").disabled = !useForm;
  $("raw").hidden = useForm;
  $("raw").value = useForm ? "" : "{}";
  if (!useForm) return;
  const required = new Set(schema.required || []);
  for (const [name, prop] of Object.entries(schema.properties)) {
    const must = required.has(name);
    const id = `field-${name}`;
    let input;
    if (prop.enum || prop.type === "boolean") {
      input = el("select", { dataset: { kind: prop.enum ? "enum" : "boolean" } });
      input.append(new Option(must ? "— choose —" : "— not set —", ""));
      for (const [text, value] of choices(prop)) input.append(new Option(text, value));
    } else {
      input = el("input", { type: prop.type === "string" ? "text" : "number" });
      if (prop.type === "integer") input.step = "1";
      if (prop.type === "number") input.step = "any";
    }
    input.id = id;
    input.name = name;
    input.required = must;
    const label = el("label", { htmlFor: id }, name);
    if (must) label.append(el("span", { className: "required", title: "required" }, " *"));
    let hint = prop.description || "";
    if (prop.type === "boolean") {
      const how = must ? "Choose Yes or No." : "Leave it unset to leave it out.";
      hint = hint ? `${hint}${/[.!?]$/.test(hint) ? "" : "."} ${how}` : how;
    }
    const wrap = el("div", { className: "field", dataset: { field: name } },
      label, input, el("small", { className: "muted" }, hint), el("div", { className: "error" }));
    fields.append(wrap);
  }
}

// The form's answer, and the required fields left unset.
function formValue() {
  const schema = current.output_schema;
  const required = new Set(schema.required || []);
  const value = {};
  const missing = [];
  for (const [name, prop] of Object.entries(schema.properties)) {
    const input = $(`field-${name}`);
    if (input.value === "") {
      if (required.has(name)) missing.push(name);
      continue;
    }
    if (input.tagName === "SELECT") value[name] = JSON.parse(input.value);
    else if (prop.type === "string") value[name] = input.value;
    else value[name] = Number(input.value);
  }
  return { value, missing };
}

function clearErrors() {
  $("answer-errors").replaceChildren();
  for (const slot of document.querySelectorAll(".field .error")) slot.textContent = "";
}

function fieldError(name, message) {
  const slot = document.querySelector(`.field[data-field="${CSS.escape(name)}"] .error`);
  if (slot) slot.textContent = message;
  return Boolean(slot);
}

function showErrors(answer) {
  clearErrors();
  for (const error of answer.errors || [{ path: "/", message: answer.detail }]) {
    const field = (error.path || "").split("/")[1];
    if (!(field && fieldError(field, error.message))) {
      $("answer-errors").append(el("li", {}, error.message));
    }
  }
}

function showMissing(missing) {
  clearErrors();
  for (const name of missing) {
    const select = $(`field-${name}`);
    const kind = select.dataset.kind;
    let message = "Required: fill it in.";
    if (kind === "boolean") message = "Required: choose Yes or No.";
    else if (kind === "enum") message = "Required: choose one.";
    fieldError(name, message);
  }
  $("answer-errors").append(el("li", {}, `Fill in the required ${missing.length === 1 ? "field" : "fields"} first: ${missing.join(", ")}.`));
  $(`field-${missing[0]}`).focus();
}

// --- refreshing -------------------------------------------------------------------------------

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(poll, POLL_MS);
}

async function poll() {
  timer = null;
  if (!me) return;
  const token = nav;
  try {
    if (!document.hidden) {
      if (view === "queue") {
        const tasks = await fetchQueue();
        if (token === nav && view === "queue") renderQueue(tasks);
      } else if (view === "task" && current) {
        await refreshTask();
      }
    }
    if (pollFailed) { pollFailed = false; say(""); }
  } catch (error) {
    if (error.status === 401) { signOut("Your key is no longer valid: sign in again.", true); return; }
    pollFailed = true;
    say(`Cannot refresh: ${error.message}`, true);
  }
  if (me) schedule();
}

function problem(error) { // an API call failed: say why
  if (error.status === 401) signOut("Your key is no longer valid: sign in again.", true);
  else say(error.message, true);
}

// --- wiring -----------------------------------------------------------------------------------

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("key").value.trim();
  if (!value) { say("Enter an API key.", true); return; }
  signIn(value);
});
$("signout").addEventListener("click", () => signOut());
$("refresh").addEventListener("click", () => loadQueue().then(() => say("")).catch(problem));
$("back").addEventListener("click", () => loadQueue().then(() => say("")).catch(problem));

$("raw-toggle").addEventListener("change", () => {
  $("raw").hidden = !$("raw-toggle").checked;
  if ($("raw-toggle").checked) $("raw").value = JSON.stringify(formValue().value, null, 2);
});

$("claim").addEventListener("click", async () => {
  try {
    const task = await api("POST", `/tasks/${enc(current.id)}/claim`);
    current = { ...current, ...claimFields(task) };
    renderTaskState();
    say(`Claimed: the task is yours until ${clock(task.claimed_until)}.`);
  } catch (error) {
    if (error.problem && error.problem.code === "task_claimed") refreshTask().catch(() => {});
    problem(error);
  }
});

$("release").addEventListener("click", async () => {
  try {
    const task = await api("POST", `/tasks/${enc(current.id)}/release`);
    current = { ...current, ...claimFields(task) };
    renderTaskState();
    say("Released: anyone may claim the task now.");
  } catch (error) { problem(error); }
});

$("answer").addEventListener("submit", async (event) => {
  event.preventDefault();
  let output;
  if ($("raw-toggle").checked) {
    try { output = JSON.parse($("raw").value || "null"); } catch {
      showErrors({ detail: "the answer is not valid JSON" });
      return;
    }
  } else {
    const { value, missing } = formValue();
    if (missing.length) { showMissing(missing); return; }
    output = value;
  }
  clearErrors();
  try {
    const execution = await api("POST", `/tasks/${enc(current.id)}/complete`, { output });
    await loadQueue();
    say(`Answered: execution ${execution.execution_id} is ${execution.status}.`);
  } catch (error) {
    if (error.problem && error.problem.code === "invalid_output") showErrors(error.problem);
    else problem(error);
  }
});

$("reject").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = $("reject-reason").value.trim();
  if (!reason) { say("Say why you reject the task.", true); $("reject-reason").focus(); return; }
  try {
    const execution = await api("POST", `/tasks/${enc(current.id)}/reject`, { reason });
    await loadQueue();
    say(`Rejected: execution ${execution.execution_id} is ${execution.status}.`);
  } catch (error) { problem(error); }
});

if (key()) signIn(key());
else $("key").focus();
