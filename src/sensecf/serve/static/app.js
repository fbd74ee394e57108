// sensecf what-if page: plain JavaScript over the JSON API (GET /info, /patients, /patients/{id};
// POST /score, /counterfactuals, /intervention, /intervention/print). Data is always set as text, never as HTML.
"use strict";

const S = {
  info: null, feats: {}, patient: null, values: {}, scoreSeq: 0, scoreTimer: null,
  pending: new Map(), selected: null, doc: null, docRequest: null,
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method, headers: body ? {"Content-Type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const err = new Error(typeof data === "object" && data.detail ? data.detail : `HTTP ${res.status}`);
    err.field = data && data.field;
    throw err;
  }
  return data;
}

// ---- formatting ------------------------------------------------------------------------------
function fmt(name, v) {
  const f = S.feats[name];
  if (v === null || v === undefined) return "–";
  if (f.kind === "categorical") return String(v);
  return Number(v).toFixed(f.kind === "integer" ? 0 : f.precision);
}
const unit = (f) => (f.unit ? ` (${f.unit})` : "");
const p3 = (p) => (p === null || p === undefined ? "–" : Number(p).toFixed(3));
const className = (c) => S.info.label_names[String(c)];
const num = (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

// ---- patient list ----------------------------------------------------------------------------
async function loadPatients() {
  const q = new URLSearchParams({q: $("search").value.trim(), min_probability: $("filter-min").value || 0,
                                 max_probability: $("filter-max").value || 1, limit: 500});
  if ($("filter-class").value !== "") q.set("predicted_class", $("filter-class").value);
  if ($("filter-cfs").checked) q.set("with_counterfactuals", "true");
  let list;
  try {
    list = await api("GET", `/patients?${q}`);
  } catch (e) {
    $("patient-count").textContent = e.message;
    return;
  }
  $("patient-count").textContent = `${list.length} row(s)${list.length === 500 ? " shown (first 500)" : ""}`;
  $("patients").replaceChildren(...list.map((p) => el("li", {},
    el("button", {type: "button", "data-id": p.id, class: S.patient && S.patient.id === p.id ? "active" : null,
                  onclick: () => openPatient(p.id).catch((e) => { $("patient-count").textContent = e.message; })},
       el("span", {}, p.id, p.group ? el("span", {class: "muted"}, ` · ${p.group}`) : null,
          p.has_counterfactuals ? el("span", {class: "cf-mark", title: "has counterfactuals"}, " ◆") : null),
       el("span", {class: `badge c${p.predicted_class}`}, className(p.predicted_class)),
       el("span", {class: "num"}, p3(p.probability))))));
}

// ---- one patient -----------------------------------------------------------------------------
async function openPatient(id) {
  const p = await api("GET", `/patients/${encodeURIComponent(id)}`);
  S.patient = p; S.values = {...p.features}; S.selected = null;
  document.querySelectorAll("#patients button").forEach((b) => b.classList.toggle("active", b.dataset.id === id));
  $("empty").hidden = true;
  for (const s of ["patient", "cf-section"]) $(s).hidden = false;
  $("narrative-section").hidden = true;
  $("pid").textContent = p.id;
  $("pgroup").textContent = p.group ? `participant ${p.group}` : "";
  renderFeatures();
  showScore({probability: p.probability, predicted_class: p.predicted_class, implausible: p.implausible});
  renderCFs();
}

function renderFeatures() {
  const p = S.patient;
  const rows = S.info.features.map((f) => {
    const fixed = p.fixed.includes(f.name);
    const way = p.directions[f.name];
    let control;
    if (f.kind === "categorical") {
      control = el("select", {"data-feature": f.name, disabled: fixed, "aria-label": f.label,
                              onchange: (e) => setValue(f.name, e.target.value)},
                   f.levels.map((l) => el("option", {value: l, selected: l === S.values[f.name]}, l)));
    } else {
      const [lo, hi] = fixed ? [p.features[f.name], p.features[f.name]] : p.bounds[f.name];
      control = el("input", {type: "range", "data-feature": f.name, min: lo, max: hi, step: f.step,
                             value: S.values[f.name], disabled: fixed || lo === hi, "aria-label": f.label,
                             oninput: (e) => setValue(f.name, parseFloat(e.target.value))});
    }
    const hint = fixed ? "fixed" : way === "any" || way === undefined ? "" : `may only ${way}`;
    return el("tr", {"data-feature": f.name, class: fixed ? "fixed" : null},
      el("td", {title: f.description}, f.label, el("span", {class: "muted"}, unit(f)),
         hint ? el("span", {class: "hint"}, hint) : null,
         f.actionability ? el("span", {class: "hint"}, `· actionability ${f.actionability}`) : null),
      el("td", {class: "num"}, fmt(f.name, p.features[f.name])),
      el("td", {}, control),
      el("td", {class: "num value"}, fmt(f.name, S.values[f.name])),
      el("td", {class: "flag"}));
  });
  $("features").tBodies[0].replaceChildren(...rows);
}

function setValue(name, v) {
  S.values[name] = v;
  const row = document.querySelector(`#features tr[data-feature="${CSS.escape(name)}"]`);
  row.querySelector(".value").textContent = fmt(name, v);
  row.classList.toggle("moved", String(v) !== String(S.patient.features[name]));
  clearTimeout(S.scoreTimer);
  S.scoreTimer = setTimeout(score, 40);
}

async function score() {
  const seq = ++S.scoreSeq;
  const id = S.patient.id;
  try {
    const r = await api("POST", "/score", {id, features: S.values});
    if (seq === S.scoreSeq && S.patient.id === id) showScore(r);
  } catch (e) {
    if (seq === S.scoreSeq) showScoreError(e);
  }
}

function showScore(r) {
  $("probability").textContent = p3(r.probability);
  $("class1-name").textContent = className(1);
  $("predicted").textContent = className(r.predicted_class);
  $("predicted").className = `badge c${r.predicted_class}`;
  $("probbar").style.width = `${(100 * r.probability).toFixed(1)}%`;
  $("score-error").textContent = "";
  document.querySelectorAll("#features tr").forEach((tr) => {
    tr.classList.remove("bad");
    const flag = tr.querySelector(".flag");
    const out = r.implausible.includes(tr.dataset.feature);
    if (flag) flag.textContent = out ? "outside the training range (implausible)" : "";
  });
}

function showScoreError(e) {
  $("score-error").textContent = e.message;
  $("probability").textContent = "–";
  if (e.field) {
    const tr = document.querySelector(`#features tr[data-feature="${CSS.escape(e.field)}"]`);
    if (tr) tr.classList.add("bad");
  }
}

function loadValues(features) {
  for (const f of S.info.features) {
    const v = features[f.name];
    S.values[f.name] = v;
    const input = document.querySelector(`#features [data-feature="${CSS.escape(f.name)}"]:is(input, select)`);
    if (f.kind !== "categorical") {  // a CF may lie beyond the slider's range: widen it to show the value
      input.min = Math.min(Number(input.min), v);
      input.max = Math.max(Number(input.max), v);
    }
    input.value = v;
    const row = input.closest("tr");
    row.querySelector(".value").textContent = fmt(f.name, v);
    row.classList.toggle("moved", String(v) !== String(S.patient.features[f.name]));
  }
  score();
}

// ---- counterfactuals -------------------------------------------------------------------------
function cfColumns() {
  const cols = S.patient.counterfactuals.map((cf) => ({cf}));
  for (const [method, job] of S.pending) if (job.id === S.patient.id) cols.push({pending: method, job});
  return cols;
}

function renderCFs() {
  const cols = cfColumns();
  const isSel = (cf) => S.selected && S.selected.cf === cf;
  const head = el("tr", {}, el("th", {}, "feature"), el("th", {class: "num"}, "row"),
    cols.map((c) => c.cf
      ? el("th", {class: "cf" + (isSel(c.cf) ? " selected" : ""), "data-method": c.cf.method,
                  "data-source": c.cf.source},
           c.cf.method, el("span", {class: "src"}, c.cf.source === "run" ? "from the run" : "new"))
      : el("th", {class: "cf pending", "data-method": c.pending}, c.pending, el("span", {class: "src"}, "running"))));
  const body = S.info.features.map((f) => el("tr", {},
    el("td", {}, f.label, el("span", {class: "muted"}, unit(f))),
    el("td", {class: "num"}, fmt(f.name, S.patient.features[f.name])),
    cols.map((c) => {
      if (!c.cf) return el("td", {class: "cf"});
      if (!c.cf.features) return el("td", {class: "cf muted"}, "–");
      const changed = c.cf.changed.includes(f.name);
      const v = c.cf.features[f.name];
      const arrow = !changed || f.kind === "categorical" ? "" : v > S.patient.features[f.name] ? " ↑" : " ↓";
      return el("td", {class: "cf num" + (changed ? " changed" : "")}, fmt(f.name, v) + arrow);
    })));
  const metric = (label, get) => el("tr", {class: "metric"}, el("td", {}, label), el("td", {}),
    cols.map((c) => el("td", {class: "cf num"}, c.cf ? get(c.cf) : "")));
  const rows = [
    metric("status", (cf) => cf.status + (cf.reason ? `: ${cf.reason}` : "")),
    metric(`P(${className(1)})`,
           (cf) => cf.probability === null ? "–" : `${p3(cf.probability)} · ${className(cf.predicted_class)}`),
    metric("changed features", (cf) => cf.features ? String(cf.changed.length) : "–"),
    metric("distance", (cf) => num(cf.metrics.distance)),
    metric("sparsity", (cf) => num(cf.metrics.sparsity, 0)),
    metric("plausibility", (cf) => num(cf.metrics.plausibility, 0)),
    metric("actionable share",
           (cf) => cf.actionable_share === null ? "–" : `${Math.round(100 * cf.actionable_share)} %`),
    metric("seconds", (cf) => num(cf.seconds, 1)),
    metric("constraint violations", (cf) => cf.violations.join("; ") || "none"),
  ];
  const buttons = el("tr", {}, el("td", {}), el("td", {}), cols.map((c) => el("td", {class: "cf"},
    c.cf ? (c.cf.features ? [
      el("button", {type: "button", class: "load", onclick: () => loadValues(c.cf.features)}, "Load into sliders"), " ",
      el("button", {type: "button", class: "select",
                    onclick: () => selectIntervention(c.cf.method, c.cf.features, c.cf)},
         "Narrative")] : "")
      : el("span", {}, el("span", {class: "spinner"}), ` ${Math.round((Date.now() - c.job.start) / 1000)} s`))));
  $("cfs").replaceChildren(el("thead", {}, head), el("tbody", {}, body, rows, buttons));
}

async function generate() {
  const method = $("method").value;
  if (S.pending.has(method)) return;
  let options = {};
  const text = $("options").value.trim();
  if (text) {
    try {
      options = JSON.parse(text);
    } catch (e) {
      $("progress").textContent = `options: not valid JSON (${e.message})`;
      return;
    }
  }
  const id = S.patient.id;
  const job = {id, start: Date.now()};
  S.pending.set(method, job);
  $("progress").textContent = `${method}: running…`;
  renderCFs();
  const tick = setInterval(() => { if (S.patient.id === id) renderCFs(); }, 1000);
  try {
    const cf = await api("POST", "/counterfactuals", {id, method, options});
    if (S.patient.id === id) {
      S.patient.counterfactuals = S.patient.counterfactuals.filter((c) => !(c.source === "new" && c.method === method));
      S.patient.counterfactuals.push(cf);
    }
    $("progress").textContent = `${method}: ${cf.status} in ${num(cf.seconds, 1)} s`;
  } catch (e) {
    $("progress").textContent = `${method}: ${e.message}`;
  } finally {
    clearInterval(tick);
    S.pending.delete(method);
    if (S.patient.id === id) renderCFs();
  }
}

// ---- intervention, narrative, export ---------------------------------------------------------
async function selectIntervention(method, features, cf = null) {
  S.selected = {method, features, cf};
  renderCFs();
  const request = {id: S.patient.id, features, method};
  $("narrative-section").hidden = false;
  $("narrative-method").textContent = `${method} · row ${S.patient.id}`;
  $("llm-narrative").hidden = true;
  $("narrative-status").textContent = "";
  try {
    S.doc = await api("POST", "/intervention", request);
    S.docRequest = request;
    $("narrative").textContent = S.doc.narrative;
  } catch (e) {
    S.doc = null;
    $("narrative").textContent = `No intervention: ${e.message}`;
  }
}

async function askLLM() {
  if (!S.docRequest) return;
  const request = {...S.docRequest, llm: true};
  $("narrative-status").textContent = "asking the language model…";
  $("ask-llm").disabled = true;
  try {
    const doc = await api("POST", "/intervention", request);
    S.doc = doc; S.docRequest = request;
    const box = $("llm-narrative");
    box.hidden = false;
    box.textContent = doc.llm_narrative
      || "The LLM's narrative was rejected: one of its numbers did not match the verified changes.";
    $("narrative-status").textContent = "";
  } catch (e) {
    $("narrative-status").textContent = e.message;
  } finally {
    $("ask-llm").disabled = false;
  }
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const a = el("a", {href: url, download: name});
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function exportJSON() {
  if (S.doc) download(`intervention-${S.doc.id}.json`, JSON.stringify(S.doc, null, 2), "application/json");
}

async function exportHTML() {
  if (!S.docRequest) return;
  const w = window.open("", "_blank");  // opened in the click, filled when the page arrives
  if (!w) { $("narrative-status").textContent = "the browser blocked the new window"; return; }
  try {
    const html = await api("POST", "/intervention/print", S.docRequest);
    w.document.open(); w.document.write(html); w.document.close();
  } catch (e) {
    w.close();
    $("narrative-status").textContent = e.message;
  }
}

// ---- start -----------------------------------------------------------------------------------
async function start() {
  S.info = await api("GET", "/info");
  for (const f of S.info.features) S.feats[f.name] = f;
  $("source").textContent = `${S.info.source} · classifier ${S.info.classifier} · ${S.info.n_patients} test rows`;
  for (const [c, name] of Object.entries(S.info.label_names)) {
    $("filter-class").append(el("option", {value: c}, `predicted ${name}`));
  }
  $("method").replaceChildren(...S.info.methods.map((m) => el("option", {value: m, selected: m === "nice-sparsity"},
                                                             m)));
  let searchTimer = null;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadPatients, 150);
  });
  for (const id of ["filter-class", "filter-min", "filter-max", "filter-cfs"]) {
    $(id).addEventListener("change", loadPatients);
  }
  $("reset").addEventListener("click", () => loadValues(S.patient.features));
  $("whatif-narrative").addEventListener("click", () => selectIntervention("what-if", {...S.values}));
  $("generate").addEventListener("click", generate);
  $("ask-llm").addEventListener("click", askLLM);
  $("export-json").addEventListener("click", exportJSON);
  $("export-html").addEventListener("click", exportHTML);
  await loadPatients();
}

start().catch((e) => { $("empty").textContent = `Could not start: ${e.message}`; });
