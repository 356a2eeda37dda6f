// The labelling page. Plain JS, no build step. Every user or model text is put in the page with
// textContent (never parsed as HTML), so markup in a prompt or a candidate is shown, never run.
"use strict";

const state = {
  config: null,
  task: null,            // the task being ranked (JSON from /api/tasks)
  placement: new Map(),  // candidate id -> tier index (0 = best), -1 = unranked
  busy: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function annotator() {
  return $("annotator").value.trim();
}

function say(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.className = "message " + kind;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.detail) || response.statusText);
    error.reason = data && data.error;
    throw error;
  }
  return data;
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["next-pool", "use-typed", "submit", "skip", "undo"]) $(id).disabled = busy;
  document.body.classList.toggle("busy", busy);
}

// ---- progress -------------------------------------------------------------------------------

async function refreshProgress() {
  const name = annotator();
  try {
    const p = await api("GET", "/api/progress?annotator=" + encodeURIComponent(name));
    const box = $("progress");
    box.replaceChildren();
    box.append(el("span", "count", String(p.you.labels)), el("span", "", name ? " labelled by you today" : " (enter your name)"));
    if (p.you.skipped) box.append(el("span", "muted", " · " + p.you.skipped + " skipped"));
    const others = Object.entries(p.annotators).map(([who, c]) => who + " " + c.labels);
    box.append(el("span", "muted", " · team " + p.team_labels + (others.length ? " (" + others.join(", ") + ")" : "")));
  } catch (e) {
    $("progress").textContent = "progress unavailable";
  }
}

// ---- tasks ----------------------------------------------------------------------------------

function requireName() {
  if (!annotator()) {
    say("Enter your name first (top right).", "error");
    $("annotator").focus();
    return false;
  }
  localStorage.setItem("labeler.annotator", annotator());
  return true;
}

async function newTask(typed) {
  if (state.busy || !requireName()) return;
  const body = { annotator: annotator() };
  if (typed) {
    body.prompt = $("typed-prompt").value;
    if (!body.prompt.trim()) { say("Type a prompt first.", "error"); $("typed-prompt").focus(); return; }
  }
  const seed = $("seed").value.trim();
  if (seed) body.seed = seed;
  setBusy(true);
  say("Generating " + state.config.k + " candidates… (the first call loads the model)", "info");
  try {
    const task = await api("POST", "/api/tasks", body);
    showTask(task, null);
    say(task.prompt_source === "overlap"
      ? "Another annotator ranked these candidates too: rank them your way (for agreement)."
      : "Rank the candidates, best first.", "info");
  } catch (e) {
    say(e.message, "error");
  } finally {
    setBusy(false);
  }
}

function showTask(task, tiers) {
  state.task = task;
  state.placement = new Map(task.candidates.map((c) => [c.id, -1]));
  if (tiers) {  // restore a ranking (after undo): tiers of texts, best first
    const byText = new Map(task.candidates.map((c) => [c.text, c.id]));
    tiers.forEach((tier, i) => tier.forEach((text) => {
      if (byText.has(text)) state.placement.set(byText.get(text), i);
    }));
  }
  $("task").hidden = false;
  $("prompt").textContent = task.prompt;
  const s = task.sampling;
  $("meta").replaceChildren(
    metaItem("model", task.model + (task.model_version ? " @ " + task.model_version : "")),
    metaItem("seed", String(s.seed)),
    metaItem("temperature", String(s.temperature)),
    metaItem("top-k", String(s.top_k)),
    metaItem("top-p", String(s.top_p)),
    metaItem("new tokens", String(s.max_new_tokens)),
  );
  renderBoard();
  const first = document.querySelector(".card");
  if (first) first.focus();
}

function metaItem(name, value) {
  const item = el("span", "meta-item");
  item.append(el("span", "meta-name", name + " "), el("span", "meta-value", value));
  return item;
}

// ---- the board ------------------------------------------------------------------------------

function letter(id) {
  return String.fromCharCode(65 + id);
}

function cardFor(candidate) {
  const card = el("div", "card");
  card.tabIndex = 0;
  card.draggable = true;
  card.dataset.id = String(candidate.id);
  card.append(el("span", "badge", letter(candidate.id)));
  const text = el("span", "text");
  const prompt = state.task.prompt;
  if (prompt && candidate.text.startsWith(prompt)) {
    text.append(el("span", "from-prompt", prompt), el("span", "completion", candidate.text.slice(prompt.length)));
  } else {
    text.append(el("span", "completion", candidate.text));
  }
  card.append(text);
  card.addEventListener("dragstart", (e) => {
    e.dataTransfer.setData("text/plain", card.dataset.id);
    e.dataTransfer.effectAllowed = "move";
    card.classList.add("dragging");
  });
  card.addEventListener("dragend", () => card.classList.remove("dragging"));
  card.addEventListener("click", () => card.focus());
  return card;
}

function tierRow(index, name, hint) {
  const row = el("div", index < 0 ? "tier pool" : "tier");
  row.dataset.tier = String(index);
  const head = el("div", "tier-name");
  head.append(el("span", "tier-number", name));
  if (hint) head.append(el("span", "tier-hint", hint));
  const cards = el("div", "tier-cards");
  row.append(head, cards);
  row.addEventListener("dragover", (e) => { e.preventDefault(); row.classList.add("over"); });
  row.addEventListener("dragleave", () => row.classList.remove("over"));
  row.addEventListener("drop", (e) => {
    e.preventDefault();
    row.classList.remove("over");
    const id = Number(e.dataTransfer.getData("text/plain"));
    if (state.placement.has(id)) place(id, index);
  });
  return row;
}

function renderBoard() {
  const board = $("board");
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
  const k = state.task.candidates.length;
  const rows = [tierRow(-1, "Unranked", "")];
  for (let i = 0; i < k; i++) {
    rows.push(tierRow(i, String(i + 1), i === 0 ? "best" : i === k - 1 ? "worst" : ""));
  }
  for (const candidate of state.task.candidates) {
    const tier = state.placement.get(candidate.id);
    rows[tier + 1].querySelector(".tier-cards").append(cardFor(candidate));
  }
  const unranked = rows[0].querySelector(".tier-cards");
  if (!unranked.children.length) unranked.append(el("span", "empty", "all ranked: press Enter to submit"));
  board.replaceChildren(...rows);
  if (focused !== null && focused !== undefined) {
    const again = board.querySelector('.card[data-id="' + focused + '"]');
    if (again) again.focus();
  }
}

function place(id, tier) {
  state.placement.set(id, tier);
  renderBoard();
}

function cardsInOrder() {
  return Array.from(document.querySelectorAll("#board .card"));
}

function selectedId() {
  const active = document.activeElement;
  return active && active.classList.contains("card") ? Number(active.dataset.id) : null;
}

function focusCard(id) {
  const card = document.querySelector('#board .card[data-id="' + id + '"]');
  if (card) card.focus();
}

function moveSelection(step) {
  const cards = cardsInOrder();
  if (!cards.length) return;
  const i = cards.indexOf(document.activeElement);
  const next = i < 0 ? 0 : Math.min(cards.length - 1, Math.max(0, i + step));
  cards[next].focus();
}

function nextUnranked(afterId) {
  const ids = state.task.candidates.map((c) => c.id).filter((id) => state.placement.get(id) === -1);
  return ids.find((id) => id > afterId) ?? ids[0];
}

// ---- submit / skip / undo -------------------------------------------------------------------

function currentTiers() {
  const k = state.task.candidates.length;
  const tiers = Array.from({ length: k }, () => []);
  for (const [id, tier] of state.placement) if (tier >= 0) tiers[tier].push(id);
  return tiers.map((t) => t.sort((a, b) => a - b)).filter((t) => t.length);
}

async function submit() {
  if (state.busy || !state.task || !requireName()) return;
  const unranked = [...state.placement.entries()].filter(([, t]) => t < 0).map(([id]) => letter(id));
  if (unranked.length) { say("Rank every candidate first (unranked: " + unranked.join(", ") + ").", "error"); return; }
  const tiers = currentTiers();
  if (tiers.length < 2) { say("Everything is tied: nothing to learn. Use at least two tiers, or skip.", "error"); return; }
  setBusy(true);
  try {
    const label = await api("POST", "/api/labels", { annotator: annotator(), task_id: state.task.task_id, tiers });
    say("Saved " + label.uid + ". Loading the next prompt…", "ok");
    state.task = null;
    refreshProgress();
  } catch (e) {
    say(e.message, "error");
    setBusy(false);
    return;
  }
  setBusy(false);
  newTask(false);
}

async function skip() {
  if (state.busy || !state.task || !requireName()) return;
  setBusy(true);
  try {
    await api("POST", "/api/tasks/" + encodeURIComponent(state.task.task_id) + "/skip", { annotator: annotator() });
    state.task = null;
    refreshProgress();
  } catch (e) {
    say(e.message, "error");
    setBusy(false);
    return;
  }
  setBusy(false);
  newTask(false);
}

async function undo() {
  if (state.busy || !requireName()) return;
  setBusy(true);
  try {
    const result = await api("POST", "/api/undo", { annotator: annotator() });
    if (result.task) {
      showTask(result.task, result.label.tiers);
      say("Undid " + result.label.uid + ": its ranking is back on the board; change it and submit again.", "ok");
    } else {
      say("Undid " + result.label.uid + ".", "ok");
    }
    refreshProgress();
  } catch (e) {
    say(e.message, "error");
  } finally {
    setBusy(false);
  }
}

// ---- keyboard -------------------------------------------------------------------------------

function onKey(e) {
  const target = e.target;
  const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
  if (typing) {
    if (e.key === "Enter" && target.id === "typed-prompt") { e.preventDefault(); newTask(true); }
    else if (e.key === "Enter" && (target.id === "annotator" || target.id === "seed") && !state.task) {
      e.preventDefault(); newTask(false);
    }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.toLowerCase();
  if (key === "n") {
    e.preventDefault();
    if (state.task) say("Submit (Enter) or skip (S) this prompt first.", "error"); else newTask(false);
    return;
  }
  if (key === "u") { e.preventDefault(); undo(); return; }
  if (!state.task || state.busy) return;
  const id = selectedId();
  const k = state.task.candidates.length;
  if (key === "enter") { e.preventDefault(); submit(); }
  else if (key === "s") { e.preventDefault(); skip(); }
  else if (key === "arrowdown" && e.shiftKey && id !== null) {
    e.preventDefault(); place(id, Math.min(k - 1, state.placement.get(id) + 1)); focusCard(id);
  } else if (key === "arrowup" && e.shiftKey && id !== null) {
    e.preventDefault(); place(id, Math.max(-1, state.placement.get(id) - 1)); focusCard(id);
  } else if (key === "arrowdown" || key === "j") { e.preventDefault(); moveSelection(1); }
  else if (key === "arrowup" || key === "k") { e.preventDefault(); moveSelection(-1); }
  else if (/^[0-9]$/.test(key) && id !== null) {
    const tier = Number(key) - 1;
    if (tier >= k) { say("There are only " + k + " tiers.", "error"); return; }
    e.preventDefault();
    place(id, tier);  // 0 -> -1: unranked
    const next = tier >= 0 ? nextUnranked(id) : id;
    focusCard(next === undefined ? id : next);
  }
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  $("annotator").value = localStorage.getItem("labeler.annotator") || "";
  $("next-pool").addEventListener("click", () => newTask(false));
  $("use-typed").addEventListener("click", () => newTask(true));
  $("submit").addEventListener("click", submit);
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("annotator").addEventListener("change", () => {
    localStorage.setItem("labeler.annotator", annotator());
    refreshProgress();
  });
  document.addEventListener("keydown", onKey);
  state.config = await api("GET", "/api/config");
  $("typed-prompt").maxLength = state.config.max_prompt_chars;
  $("model").textContent = "model: " + state.config.model + (state.config.model_version ? " @ " + state.config.model_version : "")
    + " · K = " + state.config.k;
  refreshProgress();
  say(annotator() ? "Press N (or the button) for a prompt." : "Enter your name, then get a prompt.", "info");
  document.body.dataset.ready = "1";
}

start();
