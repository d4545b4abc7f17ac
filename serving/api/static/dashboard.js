// Courtside live dashboard: REST for the initial state, then live over the WebSocket gateway
// (rooms "*" for every match and "ledger" for bets and the bankroll). No dependencies, no build step.
"use strict";

const state = {
  config: null, ws: null, retry: 0,
  rooms: {"*": {seq: null, session: null}, "ledger": {seq: null, session: null}},
  matches: new Map(),   // match_id -> {summary, points: Map(ts -> point), card}
  valueBets: new Map(), openBets: new Map(), settled: [], curve: [], startBankroll: null,
  refresh: {}, figures: null,
};
// The gateway's ledger room needs COURTSIDE_READ_TOKEN: open the page as /dashboard/#token=<it> (a fragment never leaves the browser).
const readToken = new URLSearchParams(location.hash.slice(1)).get("token");
const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};
const pct = (p) => (p === null || p === undefined ? "–" : (100 * p).toFixed(1) + "%");
const money = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(2));
const time = (ts) => (ts ? new Date(ts).toISOString().slice(11, 19) : "–");

async function getJSON(path) {
  const resp = await fetch(path, {headers: {"Accept": "application/json"}});
  if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
  return resp.json();
}

// Coalesce REST refreshes (many ledger messages in a burst -> one request).
function later(name, fn, ms = 800) {
  if (state.refresh[name]) return;
  state.refresh[name] = setTimeout(() => { state.refresh[name] = null; fn().catch(console.warn); }, ms);
}

// --- matches -----------------------------------------------------------------------------------
function surname(name) {
  return String(name || "").trim().split(/\s+/).slice(-1)[0];
}

function playersOf(id, fallback) {
  const m = state.matches.get(id);
  const players = m && m.summary.players && m.summary.players[0] ? m.summary.players : fallback;
  return players && players[0] ? players : null;
}

function matchLabel(id, fallback) {
  const players = playersOf(id, fallback);
  return players ? players.map(surname).join(" v ") : id;
}

function selectionName(id, selection, fallback) {
  const players = playersOf(id, fallback);
  const i = selection === "First Player" ? 0 : selection === "Second Player" ? 1 : -1;
  return players && i >= 0 ? surname(players[i]) : selection;
}

function ensureMatch(summary) {
  let m = state.matches.get(summary.match_id);
  if (!m) {
    m = {summary, points: new Map(), card: buildCard(summary.match_id)};
    state.matches.set(summary.match_id, m);
    $("#matches .empty")?.remove();
    loadPredictions(summary.match_id).catch(console.warn);
  }
  m.summary = {...m.summary, ...summary};
  renderCard(m);
  placeCard(m);
  return m;
}

function buildCard(id) {
  const card = el("div", {class: "card", "data-match-id": id});
  card.append(el("div", {class: "meta"}, el("span", {class: "where"}), el("span", {class: "dq"}),
    el("span", {class: "status"})),
    el("table", {class: "score", "data-testid": "score"}, el("tbody")),
    el("div", {class: "probs"}, el("span", {class: "model-p"}), el("span", {class: "market-p"})));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart winprob");
  svg.setAttribute("viewBox", "0 0 300 100");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.dataset.points = "0";
  card.append(svg);
  return card;
}

function placeCard(m) {
  const box = $("#matches");
  // in play first, then scheduled, then finished; newest start first
  const order = {in_play: 0, scheduled: 1, finished: 2};
  const all = [...state.matches.values()].sort((a, b) =>
    (order[a.summary.status] - order[b.summary.status]) ||
    String(b.summary.started_at || "").localeCompare(String(a.summary.started_at || "")));
  if (all.indexOf(m) === -1) return;
  const next = all[all.indexOf(m) + 1];
  if (m.card.parentNode !== box || m.card.nextSibling !== (next ? next.card : null)) {
    box.insertBefore(m.card, next && next.card.parentNode === box ? next.card : null);
  }
  const live = all.filter((x) => x.summary.status === "in_play").length;
  $("#matches-count").textContent = `${live} in play, ${all.length} in this session`;
}

function renderCard(m) {
  const s = m.summary, card = m.card;
  card.dataset.status = s.status;
  $(".where", card).textContent = [s.tournament, s.surface, s.best_of ? `best of ${s.best_of}` : ""]
    .filter(Boolean).join(" · ");
  $(".status", card).textContent = s.status === "finished" ? `finished${s.outcome && s.outcome !== "completed"
    ? " (" + s.outcome + ")" : ""}` : s.status === "in_play" ? (s.suspended ? "in play · NOT TRADED" : "in play")
    : "scheduled";
  $(".status", card).title = s.suspended ? `suspended from trading until the feed resynchronises: ${s.suspended}` : "";
  card.classList.toggle("suspended", Boolean(s.suspended));
  const dq = s.data_quality;  // features.live_quality: the mean score of its messages, and the worst
  $(".dq", card).textContent = dq ? `data ${(100 * dq.score).toFixed(0)}%` : "";
  $(".dq", card).title = dq ? `data quality of ${dq.messages} messages: completeness ${dq.completeness}, validity `
    + `${dq.validity}, consistency ${dq.consistency}, timeliness ${dq.timeliness ?? "not measured"}; worst ${dq.min_score}`
    : "";
  const tbody = $("table.score tbody", card);
  tbody.replaceChildren();
  const sc = s.score || {sets: [], games: null, points: null, server: null, winner: null};
  const players = s.players && s.players[0] ? s.players : ["player 1", "player 2"];
  for (const i of [0, 1]) {
    const row = el("tr");
    const name = el("td", {class: "name"});
    if (sc.server === i + 1) name.append(el("span", {class: "serve", text: "● "}));
    name.append(document.createTextNode(players[i]));
    if (sc.winner === i + 1) name.classList.add("winner");
    row.append(name);
    for (const set of sc.sets || []) row.append(el("td", {class: "set", text: String(set[i])}));
    if (sc.games) row.append(el("td", {class: "games", text: String(sc.games[i])}));
    if (sc.points) row.append(el("td", {class: "points", text: sc.points.split("-")[i] ?? ""}));
    tbody.append(row);
  }
  const scoreText = s.score_text || (s.status === "in_play" ? "0-0" : "");
  $("table.score", card).dataset.score = scoreText;
  $(".model-p", card).innerHTML = `<b class="model">model ${pct(s.probability)}</b>`;
  $(".market-p", card).innerHTML = `<b class="market">market ${pct(s.market_probability)}</b>`;
  drawWinProb(m);
}

function drawWinProb(m) {
  const svg = $("svg.winprob", m.card);
  const pts = [...m.points.values()].sort((a, b) => (a.points_played - b.points_played) || a.ts.localeCompare(b.ts));
  const n = Math.max(pts.length - 1, 1);
  const line = (key) => pts.filter((p) => p[key] !== null && p[key] !== undefined)
    .map((p) => `${(300 * pts.indexOf(p) / n).toFixed(1)},${(100 - 100 * p[key]).toFixed(1)}`).join(" ");
  svg.innerHTML = `<line class="grid" x1="0" y1="50" x2="300" y2="50"/>` +
    `<polyline class="market" points="${line("market_probability")}"/>` +
    `<polyline class="model" points="${line("probability")}"/>`;
  svg.dataset.points = String(pts.length);
}

function addPoint(matchId, point) {
  const m = state.matches.get(matchId);
  if (!m || point.probability === undefined) return;
  m.points.set(point.ts + "|" + point.points_played, point);
  drawWinProb(m);
}

async function loadPredictions(matchId) {
  const body = await getJSON(`/live/games/${encodeURIComponent(matchId)}/predictions?limit=2000`);
  for (const p of body.predictions) addPoint(matchId, p);
}

// --- value bets and the ledger ---------------------------------------------------------------------
function addValueBet(bet, fresh) {
  if (state.valueBets.has(bet.id)) return;
  state.valueBets.set(bet.id, bet);
  const row = el("tr", {class: fresh ? "new" : ""},
    el("td", {text: time(bet.ts)}), el("td", {text: matchLabel(bet.match_id, bet.players)}),
    el("td", {text: `${bet.side} ${selectionName(bet.match_id, bet.selection, bet.players)}`}),
    el("td", {text: String(bet.price)}),
    el("td", {text: pct(bet.model_probability)}), el("td", {class: "pos", text: pct(bet.edge)}),
    el("td", {text: bet.source || "inplay"}));
  const tbody = $("#value-bets tbody");
  tbody.prepend(row);
  while (tbody.children.length > 100) tbody.lastChild.remove();
}

function isOpen(o) {
  return !o.settled && (o.size_matched > 0 || o.status === "PENDING" || o.status === "EXECUTABLE");
}

function renderOpen() {
  const tbody = $("#open-bets tbody");
  tbody.replaceChildren();
  const rows = [...state.openBets.values()].sort((a, b) => String(b.placed_at).localeCompare(String(a.placed_at)));
  for (const o of rows.slice(0, 100)) {
    tbody.append(el("tr", {}, el("td", {text: time(o.placed_at)}), el("td", {text: matchLabel(o.match_id)}),
      el("td", {text: `${o.side} ${selectionName(o.match_id, o.selection)}`}), el("td", {text: String(o.price)}),
      el("td", {text: money(o.size)}), el("td", {text: money(o.size_matched)}),
      el("td", {text: o.status === "EXECUTION_COMPLETE" ? "matched" : o.status.toLowerCase()})));
  }
  $("#open-count").textContent = `(${rows.length})`;
}

function onBetUpdate(o) {
  if (isOpen(o)) state.openBets.set(o.customer_order_ref, o); else state.openBets.delete(o.customer_order_ref);
  renderOpen();
}

async function loadOpen() {
  const body = await getJSON("/bets?state=open&limit=500");
  state.openBets = new Map(body.bets.map((o) => [o.customer_order_ref, o]));
  renderOpen();
}

async function loadSettled() {
  const body = await getJSON("/bets?state=settled&limit=100");
  const tbody = $("#settled-bets tbody");
  tbody.replaceChildren();
  for (const o of body.bets) {
    tbody.append(el("tr", {}, el("td", {text: time(o.placed_at)}), el("td", {text: matchLabel(o.match_id)}),
      el("td", {text: `${o.side} ${selectionName(o.match_id, o.selection)}`}),
      el("td", {text: String(o.average_price_matched ?? "–")}),
      el("td", {text: money(o.size_matched)}), el("td", {text: o.result || "–"}),
      el("td", {class: o.profit > 0 ? "pos" : o.profit < 0 ? "neg" : "", text: money(o.profit)})));
  }
  $("#settled-count").textContent = `(${body.total})`;
}

async function loadBankroll() {
  const body = await getJSON("/live/bankroll");
  state.startBankroll = body.start;
  state.curve = body.curve;
  drawBankroll();
}

function drawBankroll() {
  const svg = $("#bankroll-chart");
  const values = [state.startBankroll ?? 0, ...state.curve.map((p) => p.bankroll)];
  const lo = Math.min(...values), hi = Math.max(...values), span = Math.max(hi - lo, 1);
  const n = Math.max(values.length - 1, 1);
  const pts = values.map((v, i) => `${(600 * i / n).toFixed(1)},${(150 - 140 * (v - lo) / span).toFixed(1)}`);
  const base = (150 - 140 * ((state.startBankroll ?? lo) - lo) / span).toFixed(1);
  svg.innerHTML = `<line class="grid" x1="0" y1="${base}" x2="600" y2="${base}"/>` +
    `<polyline class="bank" points="${pts.join(" ")}"/>`;
  svg.dataset.points = String(values.length);
}

async function loadFigures() {
  const t = (await getJSON("/metrics")).trading;
  const fig = (label, value, cls = "") => el("div", {}, el("b", {class: cls, text: value}), label);
  const sign = (x) => (x > 0 ? "pos" : x < 0 ? "neg" : "");
  $("#figures").replaceChildren(
    fig("bankroll", money(t.bankroll)), fig("net P&L", money(t.net_profit), sign(t.net_profit)),
    fig("ROI", t.roi === null ? "–" : pct(t.roi), sign(t.roi)), fig("hit rate", pct(t.hit_rate)),
    fig("max drawdown", money(t.max_drawdown)), fig("staked (matched)", money(t.staked)),
    fig("bets settled", String(t.bets_settled)), fig("orders", String(t.orders)));
}

// --- status chips ----------------------------------------------------------------------------------
function chip(id, text, kind, title) {
  const c = $("#" + id);
  c.textContent = text;
  c.dataset.state = kind;
  if (title) c.title = title;
}

async function loadStatus() {
  const s = await getJSON("/live/status");
  const m = s.serving_model || {};
  if (m.status === "unknown") chip("model-status", "model: unknown", "warn", m.reason);
  else chip("model-status", `model: ${m.model_name || "?"} v${m.model_version ?? "?"} (${m.status})`,
    m.status === "ok" ? "ok" : "warn", `${m.model_kind || ""} features as of ${m.features_as_of || "?"}`);
  const ip = s.inplay_model;
  chip("inplay-status", ip ? `in-play: ${ip.name} v${ip.version}` : "in-play: no prediction yet", ip ? "ok" : "");
  const dq = s.data_quality || {};
  const dqKind = {passed: "ok", failed: "bad", error: "bad", unknown: "warn", running: "", skipped: "warn"};
  chip("dq-status", `data quality: ${dq.status}` + (dq.evaluated_rows != null ? ` (${dq.evaluated_rows} rows)` : ""),
    dqKind[dq.status] ?? "warn",
    dq.status === "unknown" ? dq.reason : (dq.description || `gx_live_events, run ${dq.run_id || "?"}`));
  const src = dq.sources || {}, lg = dq.live_log || {};
  const srcText = src.status === "known" ? `sources ${src.fresh}/${src.checked} fresh` : "sources ?";
  const logText = lg.age_s != null ? `log ${lg.age_s} s old` : "log empty";
  chip("fresh-status", `freshness: ${srcText} · ${logText}`,
    src.status === "known" && src.fresh === src.checked && lg.fresh ? "ok" : "warn",
    (src.sources || []).map((x) => `${x.dataset}: ${x.status}` + (x.newest_record ? ` (newest ${x.newest_record})` : ""))
      .join("; ") || (src.reason || ""));
  renderServices(s.services);
  const c = s.controls || {};
  const e = (s.engines || [])[0];
  if (c.kill_switch) chip("engine-status", "engine: KILL SWITCH", "bad");
  else if (c.paused) chip("engine-status", "engine: paused", "warn");
  else if (!e) chip("engine-status", "engine: no heartbeat", "warn");
  else chip("engine-status", `engine: ${e.age_s < 30 ? "running" : "silent " + Math.round(e.age_s) + " s"}`,
    e.age_s < 30 ? "ok" : "warn", `${e.status.messages} messages, ${e.status.orders} orders`);
  const mode = e && e.status ? e.status.mode || "paper" : null;
  chip("mode-status", mode ? `${mode.toUpperCase()} · feed: ${e.status.venue || "replay"}` : "mode: ?",
    mode ? "" : "warn", mode === "paper-live" ? "real prices, paper exchange: no money is at stake"
      : "simulated market, paper exchange: no money is at stake");
}

// --- the supervised services (make up's supervisor) -----------------------------------------------
function renderServices(sv) {
  const banner = $("#crash-loop-banner");
  const body = $("#services tbody");
  if (!sv || sv.supervisor === "none") {
    chip("services-status", "services: not supervised", "", "the API runs without make up's supervisor");
    banner.hidden = true;
    body.replaceChildren(el("tr", {}, el("td", {colspan: "6", class: "empty", text: "no supervisor report"})));
    return;
  }
  const items = sv.items || [];
  const restarts = items.reduce((n, r) => n + (r.restarts || 0), 0);
  const running = items.filter((r) => r.state === "running").length;
  const title = items.map((r) => `${r.service}: ${r.state}, ${r.restarts} restarts` +
    (r.last_exit ? ` (last: ${r.last_exit})` : "")).join("\n");
  if (sv.crash_loop.length) chip("services-status", `services: CRASH LOOP (${sv.crash_loop.join(", ")})`, "bad", title);
  else if (sv.supervisor === "silent") chip("services-status", "services: supervisor silent", "warn", title);
  else if (sv.supervisor === "stopped") chip("services-status", "services: stopped", "warn", title);
  else chip("services-status", `services: ${running}/${items.length} up` + (restarts ? `, ${restarts} restarts` : ""),
    restarts ? "warn" : "ok", title);
  const pause = sv.betting_paused;
  if (pause) {
    banner.replaceChildren(`Betting paused by the supervisor: ${pause.reason}`,
      el("small", {text: `since ${pause.since} (controls v${pause.controls_version}); an operator resumes it ` +
        "(POST /control/resume with the operator token) once the cause is fixed — see the service's log"}));
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  body.replaceChildren(...items.map((r) => {
    const tr = el("tr", {"data-state": r.state, "data-crash-loop": String(!!r.crash_loop),
                         title: r.crash_loop_reason || ""},
      el("td", {text: r.service + (r.crash_loop ? " (crash loop)" : "")}), el("td", {class: "state", text: r.state}),
      el("td", {text: r.pid ?? "–"}), el("td", {text: String(r.restarts)}), el("td", {text: r.last_exit || "–"}),
      el("td", {text: time(r.last_crash_at)}));
    return tr;
  }));
}

// --- names to review (live identity) -----------------------------------------------------------------
async function loadIdentity() {
  const rows = await getJSON("/live/identity/review");
  const body = $("#identity-review tbody");
  if (!rows.length) {
    body.replaceChildren(el("tr", {}, el("td", {colspan: "5", class: "empty", text: "every name is identified"})));
    return;
  }
  body.replaceChildren(...rows.map((r) => el("tr", {},
    el("td", {text: r.venue}), el("td", {text: r.venue_key}), el("td", {text: r.name}),
    el("td", {text: r.method}), el("td", {text: time(r.first_seen)}))));
}

// --- the WebSocket -----------------------------------------------------------------------------
function onMessage(msg) {
  switch (msg.type) {
    case "game_event": ensureMatch(msg.data); break;
    case "odds_update": {
      const m = state.matches.get(msg.match_id);
      if (m) { m.summary.market_probability = msg.data.market_probability; renderCard(m); }
      break;
    }
    case "prediction_update":
      if (msg.data.phase === "inplay") {
        const m = state.matches.get(msg.match_id);
        if (m) { m.summary.probability = msg.data.probability; addPoint(msg.match_id, msg.data); renderCard(m); }
      }
      break;
    case "value_bet": addValueBet(msg.data, true); break;
    case "bet_update": onBetUpdate(msg.data); later("figures", loadFigures, 2000); break;
    case "bankroll_update":
      later("bankroll", loadBankroll); later("settled", loadSettled); later("figures", loadFigures);
      break;
  }
}

function connect() {
  const ws = new WebSocket(state.config.ws_url);
  state.ws = ws;
  chip("ws-status", "live feed: connecting", "warn");
  ws.onopen = () => {
    state.retry = 0;
    chip("ws-status", "live feed: connected", "ok");
    for (const [name, r] of Object.entries(state.rooms)) {
      const msg = {type: "subscribe", match_id: name};
      if (name === "ledger" && readToken) msg.token = readToken;
      if (r.seq !== null) { msg.last_seq = r.seq; msg.session = r.session; }
      ws.send(JSON.stringify(msg));
    }
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    $("#clock").textContent = "last message " + new Date().toLocaleTimeString();
    if (msg.type === "subscribed") {
      const r = state.rooms[msg.room];
      if (!r) return;
      r.session = msg.session;
      if (msg.gap) {  // missed messages are gone: take the snapshot and refetch what it does not carry
        if (msg.room === "ledger") { loadOpen(); loadSettled(); loadBankroll(); }
        else for (const id of state.matches.keys()) loadPredictions(id).catch(console.warn);
      }
      for (const m of msg.snapshot) onMessage(m);
      r.seq = msg.seq;
      return;
    }
    if (msg.type === "reset") {
      for (const r of Object.values(state.rooms)) { r.seq = null; r.session = msg.session; }
      ws.close(4000, "reset");
      return;
    }
    if (msg.type === "error" && msg.message) console.warn("live feed:", msg.code, msg.message);  // e.g. token_required
    if (msg.type === "heartbeat" || msg.type === "pong" || msg.type === "error") return;
    const r = state.rooms[msg.room];
    if (!r) return;
    if (r.seq !== null && msg.seq <= r.seq) return;  // seen already
    r.seq = msg.seq;
    onMessage(msg);
  };
  ws.onclose = (ev) => {
    const wait = Math.min(30000, 1000 * 2 ** state.retry++);
    chip("ws-status", `live feed: reconnecting in ${Math.round(wait / 1000)} s` +
      (ev.reason ? ` (${ev.reason})` : ""), "warn");
    setTimeout(connect, wait);
  };
}

async function main() {
  state.config = await getJSON("/live/config");
  state.startBankroll = state.config.bankroll;
  await Promise.all([loadStatus(), loadBankroll(), loadOpen(), loadSettled(), loadFigures(), loadIdentity()].map((p) =>
    p.catch(console.warn)));
  try {
    for (const bet of (await getJSON("/live/value-bets?limit=100")).reverse()) addValueBet(bet, false);
  } catch (e) { console.warn(e); }
  connect();
  setInterval(() => loadStatus().catch(console.warn), 10000);
  setInterval(() => loadIdentity().catch(console.warn), 30000);
  setInterval(() => loadFigures().catch(console.warn), 15000);
}

main().catch((e) => chip("ws-status", "dashboard failed to start: " + e.message, "bad"));
