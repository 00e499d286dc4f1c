// seqlab playground: pick a task and a model, type, run. Talks only to this server's /v1 API.
"use strict";

const EXAMPLES = {
  classify: "a gorgeous, witty, seductive movie",
  generate: "The capital of France is",
  ner: "Apple is looking at buying U.K. startup for $1 billion",
  translate: "twenty-one",
  "fill-mask": "to be or not to [MASK]",
  augment: "the movie was a great deal of fun",
};
const HINTS = {
  classify: "Class probabilities; attention models also show which tokens the model attended to.",
  generate: "The continuation streams in token by token (Server-Sent Events).",
  ner: "Named entities, highlighted as displaCy does.",
  translate: "The translation and its target × source alignment matrix.",
  "fill-mask": "Write [MASK] where a word is to be predicted.",
  augment: "One text per line; its augmented versions appear side by side.",
};
// displaCy's colours for the OntoNotes entity types; others get grey.
const ENTITY_COLOURS = {
  ORG: "#7aecec", PRODUCT: "#bfeeb7", GPE: "#feca74", LOC: "#ff9561", PERSON: "#aa9cfc", NORP: "#c887fb",
  FAC: "#9cc9cc", EVENT: "#ffeb80", LAW: "#ff8197", LANGUAGE: "#ff8197", WORK_OF_ART: "#f0d0ff", DATE: "#bfe1d9",
  TIME: "#bfe1d9", MONEY: "#e4e7d2", QUANTITY: "#e4e7d2", ORDINAL: "#e4e7d2", CARDINAL: "#e4e7d2", PERCENT: "#e4e7d2",
  PER: "#aa9cfc", MISC: "#f0d0ff",
};

const state = { models: [], augment: [], task: null, drafts: {} };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ------------------------------------------------------------------------- talking to the server

class ApiError extends Error {
  constructor(message, code) { super(message); this.code = code; }
}

// A server started with --api-key answers 401 without "Authorization: Bearer KEY". The page takes
// the key from its address (/#key=KEY: a fragment is never sent to the server), else asks for it
// at the first 401, and keeps it for this tab only (sessionStorage).
const KEY_ITEM = "seqlab-api-key";

function takeKeyFromAddress() {
  const match = location.hash.match(/(?:^#|&)key=([^&]*)/);
  if (!match) return;
  sessionStorage.setItem(KEY_ITEM, decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);  // out of the address bar
}

async function call(path, options = {}) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_ITEM);
    const headers = { ...(options.headers || {}), ...(key ? { Authorization: `Bearer ${key}` } : {}) };
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    const given = window.prompt(key ? "That API key was refused; the server's API key:" : "This server needs its API key:");
    if (!given) return response;
    sessionStorage.setItem(KEY_ITEM, given.trim());
  }
}

async function post(path, body) {
  const response = await call(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) throw await apiError(response);
  return response;
}

async function apiError(response) {
  try {
    const body = await response.json();
    return new ApiError(body.error || response.statusText, body.code);
  } catch {
    return new ApiError(`${response.status} ${response.statusText}`, "http_error");
  }
}

// Server-Sent Events over a POST body (EventSource can only GET): calls onEvent(name, data).
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(name, JSON.parse(data));
    }
  }
}

// ------------------------------------------------------------------------- page state

async function start() {
  try {
    takeKeyFromAddress();
    const response = await call("/v1/models");
    if (!response.ok) throw await apiError(response);
    const info = await response.json();
    state.models = info.models;
    state.augment = info.augment || [];
    $("status").textContent = `${state.models.length} model(s) loaded`;
    $("status").className = "status ok";
  } catch (err) {
    $("status").textContent = err instanceof ApiError ? err.message : "server unreachable";
    $("status").className = "status down";
    return;
  }
  for (const button of document.querySelectorAll("#tasks button")) {
    const task = button.dataset.task;
    button.disabled = task === "augment" ? state.augment.length === 0 : !state.models.some((m) => m.task === task);
    button.addEventListener("click", () => selectTask(task));
  }
  listModels();
  for (const method of state.augment) $("method").append(el("option", { value: method, text: method }));
  $("form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
  const first = document.querySelector("#tasks button:not(:disabled)");
  if (first) selectTask(first.dataset.task);
}

// The models this server holds; a run folder links to its report (one HTML page per run).
function listModels() {
  const rows = $("model-list").querySelector("tbody");
  for (const model of state.models) {
    const report = model.report
      ? el("a", { href: model.report, target: "_blank", rel: "noopener", class: "report-link", text: "report" })
      : el("span", { class: "note", text: "built-in: no report" });
    rows.append(el("tr", { "data-model": model.name },
      el("td", { text: model.name }), el("td", { text: model.task }),
      el("td", { class: "source", text: model.source }), el("td", {}, report)));
  }
}

function selectTask(task) {
  if (state.task) state.drafts[state.task] = $("input").value;
  state.task = task;
  for (const button of document.querySelectorAll("#tasks button")) {
    button.setAttribute("aria-selected", String(button.dataset.task === task));
  }
  for (const options of document.querySelectorAll(".options")) {
    options.classList.toggle("shown", options.dataset.for === task);
  }
  const select = $("model");
  select.replaceChildren(...state.models.filter((m) => m.task === task)
    .map((m) => el("option", { value: m.name, text: `${m.name} (${m.source})` })));
  $("model-field").hidden = task === "augment";
  $("input").value = state.drafts[task] ?? EXAMPLES[task];
  $("hint").textContent = HINTS[task];
  $("result").replaceChildren();
  delete $("result").dataset.state;
  showError(null);
}

function selectedModel() {
  return state.models.find((m) => m.name === $("model").value);
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

async function run() {
  const text = $("input").value;
  $("run").disabled = true;
  showError(null);
  $("result").replaceChildren();
  $("result").dataset.state = "running";
  try {
    await RUNNERS[state.task](text);
    $("result").dataset.state = "done";
  } catch (err) {
    showError(err.message);
    $("result").dataset.state = "error";
  } finally {
    $("run").disabled = false;
  }
}

// ------------------------------------------------------------------------- the tasks

const RUNNERS = {
  async classify(text) {
    const model = selectedModel();
    const wantAttention = Boolean(model.details.attention);
    let body;
    try {
      body = await (await post("/v1/classify", { model: model.name, texts: [text], attention: wantAttention })).json();
    } catch (err) {
      if (err.code !== "no_attention") throw err;
      body = await (await post("/v1/classify", { model: model.name, texts: [text] })).json();
      body.note = err.message;
    }
    const result = body.results[0];
    $("result").append(el("h2", { text: "Class probabilities" }), probabilities(result));
    if (result.attention) $("result").append(el("h2", { text: "Attention" }), heatmap(result.attention));
    else $("result").append(el("p", { class: "note", text: body.note || `${model.details.arch} models have no attention weights to show.` }));
  },

  async generate(prompt) {
    const model = selectedModel();
    const body = { model: model.name, prompt, max_new_tokens: Number($("max-new-tokens").value), stream: true };
    if ($("sample").checked) Object.assign(body, { do_sample: true, temperature: Number($("temperature").value) });
    const output = el("div", { class: "generated", "data-state": "streaming" });
    const added = el("span", { class: "new" });
    output.append(el("span", { class: "prompt", text: prompt }), added);
    $("result").append(el("h2", { text: "Generated" }), output);
    const response = await post("/v1/generate", body);
    await readEvents(response, (name, data) => {
      if (name === "error") throw new ApiError(data.error, data.code);
      if (name === "done") output.dataset.state = "done";
      else added.textContent += data.text;
    });
  },

  async ner(text) {
    const body = await (await post("/v1/ner", { model: $("model").value, texts: [text] })).json();
    const { entities } = body.results[0];
    $("result").append(el("h2", { text: `${entities.length} entities` }), displacy(text, entities));
  },

  async translate(text) {
    const sources = text.split("\n").filter((line) => line.trim());
    const body = await (await post("/v1/translate", {
      model: $("model").value, texts: sources, beam: Number($("beam").value), attention: true,
    })).json();
    for (const item of body.results) {
      $("result").append(el("h2", { text: item.source }), el("p", { class: "translation", text: item.translation }));
      if (item.attention) $("result").append(alignment(item));
      else $("result").append(el("p", { class: "note", text: "This model has no attention, so no alignment to show." }));
    }
  },

  async "fill-mask"(text) {
    const top = Number($("top-k").value);
    const body = await (await post("/v1/fill-mask", { model: $("model").value, text, top_k: top })).json();
    body.masks.forEach((candidates, number) => {
      const grid = el("div", { class: "candidates" });
      for (const c of candidates) {
        grid.append(el("span", { class: "candidate", text: c.token }), bar(c.probability), el("span", { text: c.probability.toFixed(3) }));
      }
      $("result").append(el("h2", { text: `[MASK] ${number + 1}` }), grid);
    });
  },

  async augment(text) {
    const texts = text.split("\n").filter((line) => line.trim());
    const n = Number($("versions").value);
    const method = $("method").value;
    const options = {};
    if ($("tagger").value) options.tagger = $("tagger").value;
    // the model-based methods use this server's own models: the first masked LM, the first two translators
    const named = (task) => state.models.filter((m) => m.task === task).map((m) => m.name);
    if (method === "contextual") options.model = named("fill-mask")[0];
    if (method === "backtranslate") [options.forward, options.backward] = named("translate");
    const body = await (await post("/v1/augment", { texts, method, n, seed: Number($("seed").value), options })).json();
    const head = el("tr", {}, el("th", { text: "original" }));
    for (let i = 1; i <= n; i++) head.append(el("th", { text: `${body.method} ${i}` }));
    const rows = body.results.map((r) => el("tr", {}, el("td", { class: "original", text: r.text }),
      ...r.augmentations.map((a) => el("td", { class: "augmentation", text: a }))));
    $("result").append(el("table", { class: "augmented" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  },
};

// ------------------------------------------------------------------------- drawing results

function bar(fraction) {
  return el("div", { class: "prob-bar" }, el("div", { style: { width: `${(100 * fraction).toFixed(1)}%` } }));
}

function probabilities(result) {
  const grid = el("div", { class: "probs" });
  const sorted = Object.entries(result.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of sorted) {
    const row = label === result.label ? "prob top" : "prob";
    grid.append(el("span", { class: `${row} prob-label`, text: label }), bar(p),
      el("span", { class: "prob-value", "data-label": label, text: p.toFixed(3) }));
  }
  return grid;
}

// Token heat map: one row of the chosen layer's attention, one head or the mean of all heads.
// The row is the [CLS] query (what a [CLS]-pooled classifier reads) or the mean over queries.
function heatmap(attention) {
  const { tokens, layers } = attention;
  const layerSelect = el("select", { id: "layer" }, ...layers.map((_, i) => el("option", { value: i, text: `layer ${i + 1}` })));
  layerSelect.value = String(layers.length - 1);
  const heads = layers[0].length;
  const headSelect = el("select", { id: "head" }, el("option", { value: "mean", text: "mean of heads" }),
    ...Array.from({ length: heads }, (_, h) => el("option", { value: h, text: `head ${h + 1}` })));
  const rowSelect = el("select", { id: "query" }, el("option", { value: "mean", text: "mean over tokens" }));
  if (tokens[0] === "[CLS]") rowSelect.prepend(el("option", { value: "cls", text: "[CLS] row" }));
  rowSelect.value = tokens[0] === "[CLS]" ? "cls" : "mean";
  const view = el("div", { class: "heatmap" });

  function draw() {
    const layer = layers[Number(layerSelect.value)];
    const chosen = headSelect.value === "mean" ? layer : [layer[Number(headSelect.value)]];
    const weights = tokens.map((_, key) => {
      let sum = 0, count = 0;
      for (const head of chosen) {
        const rows = rowSelect.value === "cls" ? [head[0]] : head;
        for (const row of rows) { sum += row[key]; count += 1; }
      }
      return sum / count;
    });
    const top = Math.max(...weights) || 1;
    view.replaceChildren(...tokens.map((token, i) => el("span", {
      class: "tok", title: weights[i].toFixed(4), "data-weight": weights[i].toFixed(4),
      style: { backgroundColor: `rgba(234, 88, 12, ${(weights[i] / top).toFixed(3)})` },
    }, token)));
  }
  for (const select of [layerSelect, headSelect, rowSelect]) select.addEventListener("change", draw);
  draw();
  const controls = el("div", { class: "heat-controls" },
    el("label", {}, "Layer ", layerSelect), el("label", {}, "Head ", headSelect), el("label", {}, "Query ", rowSelect));
  return el("div", {}, controls, view);
}

// displaCy's entity style: the text with each entity marked and labelled.
function displacy(text, entities) {
  const box = el("div", { class: "entities" });
  let at = 0;
  for (const e of [...entities].sort((a, b) => a.start - b.start)) {
    if (e.start < at) continue; // overlapping spans: keep the first
    box.append(text.slice(at, e.start));
    box.append(el("mark", {
      class: "entity", "data-label": e.label, title: e.description || e.label,
      style: { background: ENTITY_COLOURS[e.label] || "#ddd" },
    }, e.text, el("span", { class: "entity-label", text: e.label })));
    at = e.end;
  }
  box.append(text.slice(at));
  return box;
}

// Target × source alignment: one row per output token, one column per source token.
function alignment(item) {
  const head = el("tr", {}, el("th"), ...item.source_tokens.map((t) => el("th", { scope: "col", text: t })));
  const rows = item.attention.map((weights, r) => el("tr", {},
    el("th", { scope: "row", text: item.target_tokens[r] }),
    ...weights.map((w) => el("td", { title: w.toFixed(3), style: { backgroundColor: `rgba(47, 111, 235, ${w.toFixed(3)})` } }, w.toFixed(2)))));
  return el("table", { class: "alignment" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

start();
