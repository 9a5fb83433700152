// tiergate's reviewer page: sign in with an API key (role review), pick a pending task, read its
// input, instructions and earlier attempts, and answer with a form built from the function's
// output schema (or as raw JSON), or reject it with a reason. The key stays in this tab only.

const $ = (id) => document.getElementById(id);
let current = null;

function key() { return sessionStorage.getItem("tiergate-key"); }

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key()}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw Object.assign(new Error(data.detail || response.statusText), { problem: data });
  return data;
}

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").style.color = isError ? "#b42318" : "#067647";
}

function show(section) {
  for (const id of ["queue", "task"]) $(id).hidden = id !== section;
}

async function signIn(value) {
  sessionStorage.setItem("tiergate-key", value);
  try {
    await loadQueue();
    $("signin").hidden = true;
    $("who").hidden = false;
    $("who-text").textContent = "signed in";
  } catch (error) {
    sessionStorage.removeItem("tiergate-key");
    say(`Cannot sign in: ${error.message}`, true);
  }
}

async function loadQueue() {
  const { tasks } = await api("GET", "/tasks?status=pending");
  const body = $("tasks").querySelector("tbody");
  body.replaceChildren();
  for (const task of tasks) {
    const row = document.createElement("tr");
    row.dataset.task = task.id;
    for (const cell of [task.function_id, task.created_at, task.expires_at, task.claimed_by || "—"]) {
      const td = document.createElement("td");
      td.textContent = cell;
      row.append(td);
    }
    row.addEventListener("click", () => openTask(task.id));
    body.append(row);
  }
  $("empty").hidden = tasks.length > 0;
  $("tasks").hidden = tasks.length === 0;
  show("queue");
}

async function openTask(id) {
  current = await api("GET", `/tasks/${id}`);
  $("task-title").textContent = `${current.function_id} · task ${current.id}`;
  $("task-description").textContent = current.description || "";
  $("task-instructions").textContent = current.instructions || "(none)";
  $("task-input").textContent = JSON.stringify(current.input, null, 2);
  const attempts = $("task-attempts");
  attempts.replaceChildren();
  for (const attempt of current.attempts) {
    const item = document.createElement("li");
    item.textContent = `${attempt.tier} #${attempt.attempt}: ${attempt.status}` +
      (attempt.error ? ` — ${attempt.error}` : "");
    attempts.append(item);
  }
  if (!current.attempts.length) attempts.innerHTML = "<li>none: this function goes straight to a person</li>";
  buildForm(current.output_schema);
  $("answer-errors").replaceChildren();
  say("");
  show("task");
}

// A form for an object schema whose properties are strings, numbers, integers, booleans or
// enums; anything else is answered as raw JSON.
function formable(schema) {
  if (!schema || schema.type !== "object" || !schema.properties) return false;
  return Object.values(schema.properties).every(
    (p) => p.enum || ["string", "number", "integer", "boolean"].includes(p.type));
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
    const wrap = document.createElement("div");
    wrap.className = "field";
    wrap.dataset.field = name;
    const label = document.createElement("label");
    label.textContent = name + (required.has(name) ? " *" : "");
    label.htmlFor = `field-${name}`;
    let input;
    if (prop.enum) {
      input = document.createElement("select");
      for (const value of prop.enum) input.append(new Option(String(value), JSON.stringify(value)));
    } else if (prop.type === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
    } else {
      input = document.createElement("input");
      input.type = prop.type === "string" ? "text" : "number";
      if (prop.type === "integer") input.step = "1";
    }
    input.id = `field-${name}`;
    input.name = name;
    const hint = document.createElement("small");
    hint.className = "muted";
    hint.textContent = prop.description || "";
    const error = document.createElement("div");
    error.className = "error";
    wrap.append(label, input, hint, error);
    fields.append(wrap);
  }
}

function answerValue() {
  if ($("raw-toggle").checked) return JSON.parse($("raw").value || "null");
  const schema = current.output_schema;
  const value = {};
  for (const [name, prop] of Object.entries(schema.properties)) {
    const input = $(`field-${name}`);
    if (prop.enum) value[name] = JSON.parse(input.value);
    else if (prop.type === "boolean") value[name] = input.checked;
    else if (input.value === "") continue;
    else if (prop.type === "string") value[name] = input.value;
    else value[name] = Number(input.value);
  }
  return value;
}

function showErrors(problem) {
  const list = $("answer-errors");
  list.replaceChildren();
  for (const el of document.querySelectorAll(".field .error")) el.textContent = "";
  for (const error of problem.errors || [{ path: "/", message: problem.detail }]) {
    const field = error.path.split("/")[1];
    const slot = field && document.querySelector(`.field[data-field="${CSS.escape(field)}"] .error`);
    if (slot) slot.textContent = error.message;
    else list.append(Object.assign(document.createElement("li"), { textContent: error.message }));
  }
}

$("signin").addEventListener("submit", (event) => { event.preventDefault(); signIn($("key").value); });
$("signout").addEventListener("click", () => { sessionStorage.removeItem("tiergate-key"); location.reload(); });
$("refresh").addEventListener("click", () => loadQueue().catch((e) => say(e.message, true)));
$("back").addEventListener("click", () => loadQueue().catch((e) => say(e.message, true)));
$("raw-toggle").addEventListener("change", () => {
  $("raw").hidden = !$("raw-toggle").checked;
  if ($("raw-toggle").checked) $("raw").value = JSON.stringify(answerValueSafe(), null, 2);
});
function answerValueSafe() { try { $("raw-toggle").checked = false; return answerValue(); } finally { $("raw-toggle").checked = true; } }

$("claim").addEventListener("click", async () => {
  try {
    await api("POST", `/tasks/${current.id}/claim`);
    say("Claimed: the task is yours for 15 minutes.");
  } catch (error) { say(error.message, true); }
});

$("answer").addEventListener("submit", async (event) => {
  event.preventDefault();
  let output;
  try { output = answerValue(); } catch { showErrors({ detail: "the answer is not valid JSON" }); return; }
  try {
    const execution = await api("POST", `/tasks/${current.id}/complete`, { output });
    say(`Answered: execution ${execution.execution_id} is ${execution.status}.`);
    await loadQueue();
  } catch (error) {
    if (error.problem && error.problem.code === "invalid_output") showErrors(error.problem);
    else say(error.message, true);
  }
});

$("reject").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", `/tasks/${current.id}/reject`, { reason: $("reason").value });
    say("Rejected.");
    await loadQueue();
  } catch (error) { say(error.message, true); }
});

if (key()) signIn(key());
