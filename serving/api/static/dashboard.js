// Courtside live dashboard, a trader's cockpit: REST for the initial state, then live over the WebSocket
// gateway (rooms "*" for every match and "ledger" for bets and the bankroll). Why each bet (its lineage),
// what we are exposed to, each match's book and chart, and the operator's controls.
// No dependencies, no build step, nothing fetched from outside this API.
"use strict";

const state = {
  config: null, ws: null, retry: 0, api: null,
  rooms: {"*": {seq: null, session: null}, "ledger": {seq: null, session: null}},
  matches: new Map(),   // match_id -> {summary, points: Map(key -> point), card}
  names: new Map(),     // match_id -> [first, second] full names learned from value bets and bets
  valueBets: new Map(), // id -> {bet, row}
  openBets: new Map(), settled: [], curve: [], startBankroll: null,
  refresh: {}, replay: false, view: null, controls: null, ackWatch: 0, audio: null,
};
// The gateway's ledger room needs COURTSIDE_READ_TOKEN: open the page as /dashboard/#token=<it> (a fragment never
// leaves the browser); the operator token, once entered in the controls, serves too.
const readToken = new URLSearchParams(location.hash.slice(1)).get("token");
const OP_TOKEN_KEY = "courtside.operator-token";  // sessionStorage only: gone with the tab, never sent in a URL
const opToken = () => sessionStorage.getItem(OP_TOKEN_KEY);
const LABELS = ["First Player", "Second Player"];
const EDGE_TIP = "expected profit after commission per unit at risk: the stake for a back, the liability for a lay";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
};
const SVG_NS = "http://www.w3.org/2000/svg";
const sv = (tag, attrs = {}, text) => {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
};

// --- formats ---------------------------------------------------------------------------------------
const isNum = (x) => x !== null && x !== undefined && x !== "" && Number.isFinite(Number(x));
const pct = (p) => (isNum(p) ? (100 * p).toFixed(1) + "%" : "–");
const money = (x) => (isNum(x) ? Number(x).toFixed(2) : "–");
const signed = (x) => (isNum(x) ? (x > 0 ? "+" : "") + Number(x).toFixed(2) : "–");
const sign = (x) => (x > 0 ? "pos" : x < 0 ? "neg" : "");
/** Decimals of the Betfair ladder's step at a price: 0.01/0.02/0.05 below 4, 0.1/0.2/0.5 below 20, whole above. */
const priceDecimals = (p) => (p < 4 ? 2 : p < 20 ? 1 : 0);
const price = (p) => (isNum(p) ? Number(p).toFixed(priceDecimals(Number(p))) : "–");
const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone;
const DATE_TIME = new Intl.DateTimeFormat(undefined, {year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"});
const SHORT_TIME = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"});
function toDate(ts) {
  if (ts === null || ts === undefined || ts === "") return null;
  if (typeof ts === "number") return new Date(ts < 1e12 ? ts * 1000 : ts);  // epoch seconds (Dagster) or ms
  const text = String(ts);
  // a datetime without its zone is UTC (the API's clock)
  const d = new Date(/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text) ? text + "Z" : text);
  return Number.isNaN(d.getTime()) ? null : d;
}
const time = (ts) => { const d = toDate(ts); return d ? SHORT_TIME.format(d) : "–"; };
const dateTime = (ts) => { const d = toDate(ts); return d ? DATE_TIME.format(d) : "–"; };
function ago(d) {
  const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
  return s < 90 ? `${Math.round(s)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago`
    : s < 172800 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86400)} days ago`;
}
const word = (code) => String(code ?? "").toLowerCase().replaceAll("_", " ");

// --- REST ------------------------------------------------------------------------------------------
async function getJSON(path) {
  const resp = await fetch(path, {headers: {"Accept": "application/json"}});
  if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
  return resp.json();
}
/** Whether this API serves a path (its OpenAPI document): a newer page over an older API asks nothing it lacks. */
const has = (path) => !state.api || state.api.has(path);

// Coalesce REST refreshes (many ledger messages in a burst -> one request).
function later(name, fn, ms = 800) {
  if (state.refresh[name]) return;
  state.refresh[name] = setTimeout(() => { state.refresh[name] = null; fn().catch(console.warn); }, ms);
}

// --- names -----------------------------------------------------------------------------------------
const named = (p) => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === "string" && x.trim());
function learnNames(id, players) {
  if (id && named(players) && !named(state.matches.get(id)?.summary.players)) state.names.set(id, players);
}
function playersOf(id, fallback) {
  const m = state.matches.get(id);
  if (m && named(m.summary.players)) return m.summary.players;
  if (named(fallback)) return fallback;
  return state.names.get(id) || null;
}
function matchLabel(id, fallback) {
  const players = playersOf(id, fallback);
  return players ? `${players[0]} v ${players[1]}` : id;
}
function selectionName(id, selection, fallback, given) {
  const players = playersOf(id, fallback);
  const i = LABELS.indexOf(selection);
  if (players && i >= 0) return players[i];
  if (given && !LABELS.includes(given)) return given;
  return i >= 0 ? (i ? "second player" : "first player") : selection;
}
/** A sentence of the engine's with the selection labels ("back Second Player at 2.7") in the players' names. */
function unlabel(text, id, fallback) {
  const players = playersOf(id, fallback);
  if (!text || !players) return text;
  return String(text).replaceAll(LABELS[0], players[0]).replaceAll(LABELS[1], players[1]);
}
function winnerIndex(s) {
  if (s.score && s.score.winner) return s.score.winner - 1;
  if (!s.winner) return -1;
  const i = LABELS.indexOf(s.winner);
  return i >= 0 ? i : named(s.players) ? s.players.indexOf(s.winner) : -1;
}

// --- charts ----------------------------------------------------------------------------------------
function niceStep(span, most) {
  const raw = Math.max(span, 1e-9) / most, mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || 10 * mag;
}
function ticks(lo, hi, most, integer = false) {
  let step = niceStep(hi - lo, most);
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(6));
  return out;
}

/** A probability chart with axes: y 0-100 %, x points played; ``series`` [{x, model, market}] sorted by x;
 * ``markers`` [{x, p, side, ref, title, rejected}] (bets: ▲ back, ▼ lay). */
function probChart(svg, series, markers = [], big = false) {
  const [W, H] = big ? [640, 270] : [300, 130];
  const m = big ? {l: 52, r: 12, t: 10, b: 36} : {l: 40, r: 8, t: 6, b: 26};
  const xs = series.map((p) => p.x).concat(markers.map((k) => k.x));
  const x0 = xs.length ? Math.min(...xs) : 0;
  const x1 = Math.max(xs.length ? Math.max(...xs) : 1, x0 + 1);
  const sx = (x) => (m.l + (W - m.l - m.r) * (x - x0) / (x1 - x0)).toFixed(1);
  const sy = (p) => (m.t + (H - m.t - m.b) * (1 - p)).toFixed(1);
  svg.replaceChildren();
  for (const p of big ? [0, 0.25, 0.5, 0.75, 1] : [0, 0.5, 1]) {
    svg.append(sv("line", {class: "grid", x1: m.l, x2: W - m.r, y1: sy(p), y2: sy(p)}),
      sv("text", {x: m.l - 3, y: +sy(p) + 3, "text-anchor": "end"}, `${100 * p}%`));
  }
  svg.append(sv("line", {class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: H - m.b}),
    sv("line", {class: "axis", x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b}));
  for (const t of ticks(x0, x1, big ? 10 : 5, true)) {
    svg.append(sv("line", {class: "axis", x1: sx(t), x2: sx(t), y1: H - m.b, y2: H - m.b + 3}),
      sv("text", {x: sx(t), y: H - m.b + (big ? 14 : 11), "text-anchor": "middle"}, String(t)));
  }
  const yMid = (m.t + H - m.b) / 2;
  svg.append(sv("text", {x: (m.l + W - m.r) / 2, y: H - 3, "text-anchor": "middle", class: "axis-title"}, "points played"),
    sv("text", {x: big ? 12 : 9, y: yMid, "text-anchor": "middle", class: "axis-title",
      transform: `rotate(-90 ${big ? 12 : 9} ${yMid})`}, "P(win)"));
  const line = (key) => series.filter((p) => isNum(p[key])).map((p) => `${sx(p.x)},${sy(p[key])}`).join(" ");
  svg.append(sv("polyline", {class: "market", points: line("market")}),
    sv("polyline", {class: "model", points: line("model")}));
  const r = big ? 6 : 4;
  for (const k of markers) {
    const x = +sx(k.x), y = +sy(k.p);
    const d = k.side === "LAY" ? `M${x - r},${y - r} L${x + r},${y - r} L${x},${y + r} Z`
      : `M${x - r},${y + r} L${x + r},${y + r} L${x},${y - r} Z`;
    const mk = sv("path", {d, class: `bet-marker ${k.side === "LAY" ? "lay" : "back"}${k.rejected ? " rejected" : ""}`,
      "data-ref": k.ref, "data-side": k.side});
    mk.append(sv("title", {}, k.title));
    svg.append(mk);
  }
  svg.dataset.points = String(series.length);
}

function seriesOf(m) {
  const pts = [...m.points.values()].sort((a, b) =>
    (a.points_played - b.points_played) || String(a.ts).localeCompare(String(b.ts)));
  return pts.map((p, i) => ({x: isNum(p.points_played) ? p.points_played : i, model: p.probability,
    market: p.market_probability, ts: p.ts}));
}

// --- matches ---------------------------------------------------------------------------------------
function ensureMatch(summary) {
  let m = state.matches.get(summary.match_id);
  if (!m) {
    m = {summary, points: new Map(), card: buildCard(summary.match_id)};
    state.matches.set(summary.match_id, m);
    $("#matches .empty")?.remove();
    loadPredictions(summary.match_id).catch(console.warn);
  }
  m.summary = {...m.summary, ...summary};
  if (named(m.summary.players)) state.names.delete(summary.match_id);
  renderCard(m);
  placeCard(m);
  if (state.view && state.view.id === summary.match_id) renderMatchHead();
  return m;
}

function buildCard(id) {
  const card = el("div", {class: "card", "data-match-id": id, tabindex: "0", role: "button",
    title: "open the match: book, chart and bets"});
  card.append(el("div", {class: "meta"}, el("span", {class: "where"}), el("span", {class: "dq"}),
    el("span", {class: "status"})),
    el("table", {class: "score", "data-testid": "score"}, el("tbody")),
    el("div", {class: "probs"}, el("span", {class: "model-p"}), el("span", {class: "market-p"})));
  card.append(sv("svg", {class: "chart winprob", viewBox: "0 0 300 130", "data-points": "0"}));
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

function statusText(s) {
  if (s.status === "finished") return `finished${s.outcome && s.outcome !== "completed" ? " (" + s.outcome + ")" : ""}`;
  if (s.status === "in_play") return s.suspended ? "in play · NOT TRADED" : "in play";
  return "scheduled";
}

/** The score table's rows: full names (the server's marker, the winner — also of a retired match), sets, games, points. */
function fillScore(tbody, s) {
  tbody.replaceChildren();
  const sc = s.score || {sets: [], games: null, points: null, server: null, winner: null};
  const players = playersOf(s.match_id, s.players) || ["name not yet in the feed", "name not yet in the feed"];
  const won = winnerIndex(s);
  for (const i of [0, 1]) {
    const row = el("tr");
    const name = el("td", {class: "name"});
    if (sc.server === i + 1) name.append(el("span", {class: "serve", text: "● "}));
    name.append(document.createTextNode(players[i]));
    if (won === i) {
      name.classList.add("winner");
      name.append(el("small", {class: "won", text: s.outcome && s.outcome !== "completed" ? `won (${s.outcome})` : "won"}));
    }
    row.append(name);
    for (const set of sc.sets || []) row.append(el("td", {class: "set", text: String(set[i])}));
    if (sc.games) row.append(el("td", {class: "games", text: String(sc.games[i])}));
    if (sc.points) row.append(el("td", {class: "points", text: sc.points.split("-")[i] ?? ""}));
    tbody.append(row);
  }
}

function renderCard(m) {
  const s = m.summary, card = m.card;
  card.dataset.status = s.status;
  $(".where", card).textContent = [s.tournament, s.surface, s.best_of ? `best of ${s.best_of}` : ""]
    .filter(Boolean).join(" · ");
  $(".status", card).textContent = statusText(s);
  $(".status", card).title = s.suspended ? `suspended from trading until the feed resynchronises: ${s.suspended}` : "";
  card.classList.toggle("suspended", Boolean(s.suspended));
  const dq = s.data_quality;  // features.live_quality: the mean score of its messages, and the worst
  $(".dq", card).textContent = dq ? `data ${(100 * dq.score).toFixed(0)}%` : "";
  $(".dq", card).title = dq ? `data quality of ${dq.messages} messages: completeness ${dq.completeness}, validity `
    + `${dq.validity}, consistency ${dq.consistency}, timeliness ${dq.timeliness ?? "not measured"}; worst ${dq.min_score}`
    : "";
  fillScore($("table.score tbody", card), s);
  const scoreText = s.score_text || (s.status === "in_play" ? "0-0" : "");
  $("table.score", card).dataset.score = scoreText;
  const first = playersOf(s.match_id, s.players)?.[0];
  $(".model-p", card).replaceChildren(el("b", {class: "model", text: `model ${pct(s.probability)}`}));
  $(".market-p", card).replaceChildren(el("b", {class: "market", text: `market ${pct(s.market_probability)}`}));
  $(".probs", card).title = first ? `P(${first} wins)` : "P(first player wins)";
  drawWinProb(m);
}

function drawWinProb(m) {
  probChart($("svg.winprob", m.card), seriesOf(m));
  if (state.view && state.view.id === m.summary.match_id) drawMatchChart();
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

// --- the match view ------------------------------------------------------------------------------
async function openMatch(id) {
  const dlg = $("#match-view");
  state.view = {id, markets: {}, bets: []};
  dlg.dataset.matchId = id;
  $(".book tbody", dlg).replaceChildren(el("tr", {}, el("td", {colspan: "5", class: "empty", text: "loading the book…"})));
  $(".bets tbody", dlg).replaceChildren();
  renderMatchHead();
  drawMatchChart();
  if (!dlg.open) dlg.showModal();
  const st = await getJSON(`/live/games/${encodeURIComponent(id)}/state`);
  if (!state.view || state.view.id !== id) return;
  state.view.markets = st.odds?.markets || {};
  ensureMatch(st.match);
  renderBook();
  await loadViewBets();
}

function renderMatchHead() {
  const v = state.view, dlg = $("#match-view");
  const m = state.matches.get(v.id);
  const s = m ? m.summary : {match_id: v.id};
  $(".title", dlg).textContent = matchLabel(v.id, s.players);
  $(".where", dlg).textContent = [s.tournament, s.surface, s.best_of ? `best of ${s.best_of}` : "", statusText(s),
    s.score_text ? `score ${s.score_text}` : "", s.final_score ? `final ${s.final_score}` : ""].filter(Boolean).join(" · ");
  fillScore($("table.score tbody", dlg), s);
  $(".first-name", dlg).textContent = playersOf(v.id, s.players)?.[0] || "the first-named player";
}

function drawMatchChart() {
  const v = state.view;
  if (!v) return;
  const m = state.matches.get(v.id);
  const series = m ? seriesOf(m) : [];
  const markers = [];
  for (const o of v.bets) {
    const at = toDate(o.placed_at);
    if (!at || !series.length) continue;
    // the prediction in force when the order was placed: the newest at or before it
    let pt = series[0];
    for (const p of series) { const t = toDate(p.ts); if (t && t <= at && (!toDate(pt.ts) || t >= toDate(pt.ts))) pt = p; }
    const p = isNum(pt.model) ? pt.model : pt.market;
    if (!isNum(p)) continue;
    const unmatched = o.status === "REJECTED" || (o.status === "EXECUTION_COMPLETE" && !(o.size_matched > 0));
    markers.push({x: pt.x, p, side: o.side, ref: o.customer_order_ref, rejected: unmatched,
      title: `${o.side} ${selectionName(v.id, o.selection, o.players, o.selection_name)} @ ${price(o.price)}, `
        + `stake ${money(o.size)}, ${betStatus(o)} — ${time(o.placed_at)} (click for lineage)`});
  }
  probChart($("#match-view svg.chart"), series, markers, true);
}

function renderBook() {
  const v = state.view, dlg = $("#match-view");
  const tbody = $(".book tbody", dlg);
  const markets = Object.values(v.markets).sort((a, b) => (b.in_play - a.in_play) || String(b.at).localeCompare(String(a.at)));
  if (!markets.length) {
    tbody.replaceChildren(el("tr", {}, el("td", {colspan: "5", class: "empty", text: "no market yet"})));
    return;
  }
  const rows = [];
  for (const mk of markets) {
    rows.push(el("tr", {class: "market-row", "data-market-id": mk.market_id, title: `market ${mk.market_id}`},
      el("td", {colspan: "5", class: "note", text: `${mk.in_play ? "in-play" : "pre-match"} market · `
        + `${word(mk.status)}${mk.simulated ? " · SIMULATED prices" : ""}${mk.source ? " · " + mk.source : ""} · `
        + `as of ${time(mk.at)}`})));
    for (const [sel, [back, lay]] of Object.entries(mk.prices || {})) {
      const [bs, ls] = (mk.sizes || {})[sel] || [null, null];
      rows.push(el("tr", {"data-selection": sel, "data-market-id": mk.market_id},
        el("td", {text: selectionName(v.id, sel)}),
        el("td", {class: "num back", "data-price": back ?? "", text: price(back)}),
        el("td", {class: "num back-size", text: money(bs)}),
        el("td", {class: "num lay", "data-price": lay ?? "", text: price(lay)}),
        el("td", {class: "num lay-size", text: money(ls)})));
    }
  }
  tbody.replaceChildren(...rows);
  $(".book-note", dlg).textContent = "best back and lay prices with the sizes available";
}

async function loadViewBets() {
  const v = state.view;
  if (!v) return;
  const body = await getJSON(`/bets?match_id=${encodeURIComponent(v.id)}&state=all&limit=500`);
  if (!state.view || state.view.id !== v.id) return;
  v.bets = body.bets;
  for (const o of body.bets) learnNames(o.match_id, o.players);
  $("#match-view .bets tbody").replaceChildren(...body.bets.map((o) => el("tr", {"data-ref": o.customer_order_ref},
    el("td", {text: time(o.placed_at)}),
    el("td", {text: `${o.side} ${selectionName(v.id, o.selection, o.players, o.selection_name)}`}),
    el("td", {class: "num", text: price(o.price)}), el("td", {class: "num", text: money(o.size)}),
    el("td", {class: "num", text: money(o.size_matched)}), el("td", {text: betStatus(o)}))));
  $("#match-view .bets-count").textContent = `(${body.total}) · click one for its lineage`;
  drawMatchChart();
}

// --- value bets --------------------------------------------------------------------------------------
/** Actionable: inside the configured price and edge bounds and a change from the match's previous decision. */
const actionable = (b) => b.within_limits !== false && b.change !== false;

function fateText(b) {
  const f = b.fate;
  if (f === undefined) return {status: "", text: "–", title: ""};
  if (!f || !f.status) return {status: "pending", text: "…", title: "the engine has not decided yet"};
  const reason = f.reason ? `: ${word(f.reason)}` : "";
  return {status: f.status, text: word(f.status) + reason,
    title: unlabel([f.reason, f.message].filter(Boolean).join(" — "), b.match_id, b.players)};
}

function valueRow(b, fresh) {
  const f = fateText(b);
  const act = actionable(b);
  const row = el("tr", {class: [fresh ? "new" : "", act ? "" : "noise"].filter(Boolean).join(" "),
    "data-id": String(b.id), "data-ref": b.ref || null, "data-actionable": String(act), "data-fate": f.status,
    title: act ? "click for the lineage" : "not actionable: " + [b.within_limits === false ? "outside the price/edge bounds" : "",
      b.change === false ? "same decision as the match's previous one" : ""].filter(Boolean).join(", ")},
  el("td", {text: time(b.ts)}), el("td", {text: matchLabel(b.match_id, b.players)}),
  el("td", {text: `${b.side} ${selectionName(b.match_id, b.selection, b.players, b.selection_name)}`}),
  el("td", {class: "num", text: price(b.price)}), el("td", {class: "num", text: money(b.size)}),
  el("td", {class: "num", text: pct(b.model_probability)}),
  el("td", {class: "num pos", text: pct(b.edge), title: EDGE_TIP}),
  el("td", {class: `fate fate-${f.status}`, text: f.text, title: f.title}),
  el("td", {text: b.source || "inplay"}));
  return row;
}

function addValueBet(bet, fresh) {
  learnNames(bet.match_id, bet.players);
  const old = state.valueBets.get(bet.id);
  const tbody = $("#value-bets tbody");
  const row = valueRow(bet, fresh && !old);
  if (old) {
    if (old.row.classList.contains("alerting")) row.classList.add("alerting");
    old.row.replaceWith(row);
  } else {
    tbody.prepend(row);
    while (tbody.children.length > 200) {
      const last = tbody.lastChild;
      state.valueBets.delete(Number(last.dataset.id));
      last.remove();
    }
  }
  state.valueBets.set(bet.id, {bet, row});
  if (fresh && !old && actionable(bet) && $("#alert-value").checked) alertOn(row);
  $("#value-hidden").textContent = String($$("#value-bets tbody tr.noise").length);
}

function alertOn(row) {
  row.classList.add("alerting");
  const badge = $("#value-alert");
  badge.hidden = false;
  clearTimeout(state.alertTimer);
  state.alertTimer = setTimeout(() => { badge.hidden = true; }, 4000);
  try {
    const ctx = state.audio || (state.audio = new AudioContext());
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
  } catch (e) { console.warn("no audio:", e); }
}

// --- the ledger --------------------------------------------------------------------------------------
function isOpen(o) {
  return !o.settled && (o.size_matched > 0 || o.status === "PENDING" || o.status === "EXECUTABLE");
}
function betStatus(o) {
  if (o.status === "EXECUTION_COMPLETE") return o.size_matched > 0 ? "matched" : o.size_lapsed > 0 ? "lapsed" : "cancelled";
  if (o.status === "REJECTED") return `rejected${o.error_code ? " (" + word(o.error_code) + ")" : ""}`;
  if (o.status === "EXECUTABLE") return o.size_matched > 0 ? "part matched" : "resting";
  return word(o.status);
}

function betCells(o) {
  return [el("td", {text: time(o.placed_at)}), el("td", {text: matchLabel(o.match_id, o.players)}),
    el("td", {text: `${o.side} ${selectionName(o.match_id, o.selection, o.players, o.selection_name)}`})];
}

function renderOpen() {
  const tbody = $("#open-bets tbody");
  const rows = [...state.openBets.values()].sort((a, b) => String(b.placed_at).localeCompare(String(a.placed_at)));
  tbody.replaceChildren(...rows.slice(0, 100).map((o) => el("tr", {"data-ref": o.customer_order_ref}, ...betCells(o),
    el("td", {class: "num", text: price(o.price)}), el("td", {class: "num", text: money(o.size)}),
    el("td", {class: "num", text: money(o.size_matched)}), el("td", {text: betStatus(o)}))));
  $("#open-count").textContent = `(${rows.length}) · click one for its lineage`;
}

function onBetUpdate(o) {
  const old = state.openBets.get(o.customer_order_ref);
  if (old && !o.players) o = {...o, players: old.players, selection_name: old.selection_name};
  if (isOpen(o)) state.openBets.set(o.customer_order_ref, o); else state.openBets.delete(o.customer_order_ref);
  renderOpen();
}

async function loadOpen() {
  const body = await getJSON("/bets?state=open&limit=500");
  for (const o of body.bets) learnNames(o.match_id, o.players);
  state.openBets = new Map(body.bets.map((o) => [o.customer_order_ref, o]));
  renderOpen();
}

async function loadSettled() {
  const body = await getJSON("/bets?state=settled&limit=100");
  $("#settled-bets tbody").replaceChildren(...body.bets.map((o) => el("tr", {"data-ref": o.customer_order_ref},
    ...betCells(o), el("td", {class: "num", text: price(o.average_price_matched)}),
    el("td", {class: "num", text: money(o.size_matched)}), el("td", {text: o.result || "–"}),
    el("td", {class: "num " + sign(o.profit), text: money(o.profit)}))));
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
  const W = 600, H = 190, m = {l: 64, r: 12, t: 10, b: 34};
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1) { lo -= 1; hi += 1; }
  const n = Math.max(values.length - 1, 1);
  const sx = (i) => (m.l + (W - m.l - m.r) * i / n).toFixed(1);
  const sy = (v) => (m.t + (H - m.t - m.b) * (1 - (v - lo) / (hi - lo))).toFixed(1);
  svg.replaceChildren();
  for (const v of ticks(lo, hi, 4)) {
    svg.append(sv("line", {class: "grid", x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v)}),
      sv("text", {x: m.l - 4, y: +sy(v) + 4, "text-anchor": "end"}, money(v)));
  }
  svg.append(sv("line", {class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: H - m.b}),
    sv("line", {class: "axis", x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b}));
  for (const t of ticks(0, n, 10, true)) {
    svg.append(sv("text", {x: sx(t), y: H - m.b + 13, "text-anchor": "middle"}, String(t)));
  }
  const yMid = (m.t + H - m.b) / 2;
  svg.append(sv("text", {x: (m.l + W - m.r) / 2, y: H - 3, "text-anchor": "middle"}, "settled markets"),
    sv("text", {x: 11, y: yMid, "text-anchor": "middle", transform: `rotate(-90 11 ${yMid})`}, "bankroll"));
  if (state.startBankroll !== null) {
    svg.append(sv("line", {class: "grid", x1: m.l, x2: W - m.r, y1: sy(state.startBankroll), y2: sy(state.startBankroll),
      "stroke-dasharray": "4 3"}));
  }
  svg.append(sv("polyline", {class: "bank", points: values.map((v, i) => `${sx(i)},${sy(v)}`).join(" ")}));
  svg.dataset.points = String(values.length);
}

async function loadFigures() {
  const t = (await getJSON("/metrics")).trading;
  const fig = (label, value, cls = "") => el("div", {}, el("b", {class: cls, text: value}), label);
  $("#figures").replaceChildren(
    fig("bankroll", money(t.bankroll)), fig("net P&L", money(t.net_profit), sign(t.net_profit)),
    fig("ROI", t.roi === null ? "–" : pct(t.roi), sign(t.roi)), fig("hit rate", pct(t.hit_rate)),
    fig("max drawdown", money(t.max_drawdown)), fig("staked (matched)", money(t.staked)),
    fig("bets settled", String(t.bets_settled)), fig("orders", String(t.orders)));
}

// --- exposure and P&L --------------------------------------------------------------------------------
async function loadExposure() {
  if (!has("/live/exposure")) {
    $("#exposure-note").textContent = "this API has no /live/exposure yet";
    return;
  }
  renderExposure(await getJSON("/live/exposure"));
}

const marketKind = (id) => (String(id).startsWith("pre-") ? "pre-match market" : String(id).startsWith("sim-")
  ? "in-play market (simulated)" : "market");

/** One match's positions: its markets (pre-match, in-play) settle on the same winner, so its worst case is over
 * the summed P&L of each winner; a single market's is the API's own figure. */
function matchPosition(markets) {
  if (markets.length === 1) return {liability: markets[0].liability, pnl: markets[0].pnl_if || []};
  const sums = new Map();
  for (const mk of markets) {
    for (const p of mk.pnl_if || []) {
      const s = sums.get(p.selection) || {selection: p.selection, name: p.name, pnl: 0};
      s.pnl += Number(p.pnl || 0);
      sums.set(p.selection, s);
    }
  }
  const pnl = [...sums.values()].map((p) => ({...p, pnl: Math.round(100 * p.pnl) / 100}));
  const labelled = pnl.every((p) => LABELS.includes(p.selection));
  const liability = markets.every((mk) => mk.settled) ? 0 : labelled && pnl.length
    ? Math.max(0, -Math.min(...pnl.map((p) => p.pnl))) : markets.reduce((n, mk) => n + Number(mk.liability || 0), 0);
  return {liability: Math.round(100 * liability) / 100, pnl};
}

function renderExposure(x) {
  const rows = [];
  const groups = new Map();
  for (const mk of x.matches || []) {
    learnNames(mk.match_id, mk.players);
    if (!groups.has(mk.match_id)) groups.set(mk.match_id, []);
    groups.get(mk.match_id).push(mk);
  }
  const matches = [...groups.entries()].map(([id, markets]) => ({id, markets, settled: markets.every((m) => m.settled),
    ...matchPosition(markets)})).sort((a, b) => (a.settled - b.settled) || (b.liability - a.liability));
  for (const mt of matches) {
    const players = mt.markets[0].players;
    const sum = (key) => mt.markets.reduce((n, mk) => n + Number(mk[key] || 0), 0);
    const openCount = sum("open_orders");
    const realised = mt.markets.some((mk) => mk.realised_pnl !== null && mk.realised_pnl !== undefined)
      ? sum("realised_pnl") : null;
    const winner = mt.markets.find((mk) => mk.winner)?.winner;
    rows.push(el("tr", {class: "match-row", "data-match-id": mt.id, "data-liability": String(mt.liability),
      "data-markets": mt.markets.map((mk) => mk.market_id).join(" ")},
    el("td", {text: matchLabel(mt.id, players) + (mt.settled ? ` (settled${winner ? ": " +
      selectionName(mt.id, winner, players) + " won" : ""})` : "")}),
    el("td", {class: "num", text: money(sum("matched_stake"))}),
    el("td", {class: "num", text: openCount ? `${openCount} · ${money(sum("open_stake"))}` : "–"}),
    el("td", {class: "num liability", text: money(mt.liability), title: "worst case over which player wins"}),
    el("td", {class: "num", text: mt.settled ? "" : mt.pnl.map((p) =>
      `${selectionName(mt.id, p.selection, players, p.name)} ${signed(p.pnl)}`).join(" / ")}),
    el("td", {class: "num " + sign(realised), text: realised === null ? "–" : signed(realised)})));
    for (const mk of mt.markets) {
      if (mt.markets.length > 1) {
        rows.push(el("tr", {class: "runner-row market-sub", "data-market-id": mk.market_id, title: `market ${mk.market_id}`},
          el("td", {text: marketKind(mk.market_id)}), el("td", {class: "num", text: money(mk.matched_stake)}),
          el("td", {class: "num", text: String(mk.open_orders)}), el("td", {class: "num", text: money(mk.liability)}),
          el("td", {}), el("td", {class: "num", text: mk.realised_pnl === null ? "–" : signed(mk.realised_pnl)})));
      }
      const pnl = new Map((mk.pnl_if || []).map((p) => [p.selection, p]));
      for (const r of mk.runners || []) {
        const p = pnl.get(r.selection);
        const name = selectionName(mt.id, r.selection, players, r.name);
        rows.push(el("tr", {class: "runner-row", "data-runner-of": mt.id, "data-selection": r.selection},
          el("td", {text: name}),
          el("td", {class: "num", text: `back ${money(r.back_matched)} · lay ${money(r.lay_matched)}`}), el("td", {}),
          el("td", {class: "num", text: money(r.liability), title: "worst case of this runner's own bets (it wins / it loses)"}),
          el("td", {class: "num " + sign(p?.pnl), text: mk.settled ? "" : signed(p?.pnl), title: `P&L if ${name} wins`}),
          el("td", {})));
      }
    }
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", {colspan: "6", class: "empty", text: "no position"})));
  $("#exposure tbody").replaceChildren(...rows);
  const t = x.totals || {};
  $("#exposure tfoot").replaceChildren(el("tr", {"data-total-exposure": String(t.exposure ?? "")},
    el("td", {text: "total"}), el("td", {class: "num", text: money(t.matched_stake)}),
    el("td", {class: "num", text: String(t.open_orders ?? "–")}), el("td", {class: "num", text: money(t.exposure)}),
    el("td", {}), el("td", {class: "num " + sign(t.realised_pnl), text: signed(t.realised_pnl)})));
  $("#exposure-note").textContent = "per match and runner: matched bets at their average price, unmatched orders "
    + "where they would lose" + (x.limits_source ? ` · limits: ${x.limits_source}` : "");
  renderLimits(x.limits || []);
  renderRejections(x.rejections || {});
}

function renderLimits(limits) {
  const box = $("#limits");
  box.replaceChildren(...limits.map((l) => {
    const isCount = Number.isInteger(l.limit) && Number.isInteger(l.value) && /order/.test(l.name);
    const fmt = (v) => (isCount ? String(v) : money(v));
    const used = isNum(l.limit) && l.limit > 0 ? Math.min(1, Math.max(0, l.value / l.limit)) : l.value > 0 ? 1 : 0;
    const level = used >= 1 ? "bad" : used >= 0.8 ? "warn" : "ok";
    const bar = el("span", {style: `width: ${(100 * used).toFixed(1)}%`});
    return el("div", {class: "limit", "data-limit": l.name, "data-level": level},
      el("span", {class: "name", text: word(l.name)}),
      el("div", {class: "bar", title: `${(100 * used).toFixed(0)}% used`}, bar),
      el("span", {class: "num", text: `${fmt(l.value)} of ${isNum(l.limit) ? fmt(l.limit) : "no limit"} · room ${
        isNum(l.room) ? fmt(l.room) : "–"}`}));
  }));
  if (!limits.length) box.replaceChildren(el("p", {class: "empty", text: "no limit reported"}));
}

function renderRejections(rj) {
  const by = Object.entries(rj.by_reason || {}).sort((a, b) => b[1] - a[1]);
  const total = by.reduce((n, [, c]) => n + c, 0);
  $("#rejections-total").textContent = `(${total}) by reason`;
  const parts = [by.length ? el("ul", {}, ...by.map(([r, n]) => el("li", {"data-reason": r, text: `${word(r)}: ${n}`})))
    : el("p", {class: "empty", text: "no order refused"})];
  const buckets = new Map();
  for (const p of rj.timeline || []) buckets.set(p.at, (buckets.get(p.at) || 0) + p.count);
  if (buckets.size) {
    const W = 600, H = 70, m = {l: 30, r: 6, t: 6, b: 16};
    const keys = [...buckets.keys()].sort((a, b) => String(a).localeCompare(String(b)));
    const hi = Math.max(...buckets.values(), 1), w = (W - m.l - m.r) / keys.length;
    const svg = sv("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`});
    svg.append(sv("line", {class: "axis", x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b}),
      sv("line", {class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: H - m.b}),
      sv("text", {x: m.l - 3, y: m.t + 8, "text-anchor": "end"}, String(hi)),
      sv("text", {x: m.l - 3, y: H - m.b, "text-anchor": "end"}, "0"),
      sv("text", {x: m.l, y: H - 3}, time(keys[0])),
      sv("text", {x: W - m.r, y: H - 3, "text-anchor": "end"}, `${time(keys[keys.length - 1])} · rejections over time`));
    keys.forEach((k, i) => {
      const h = (H - m.t - m.b) * buckets.get(k) / hi;
      const r = sv("rect", {class: "bar-rect", x: (m.l + i * w + 1).toFixed(1), y: (H - m.b - h).toFixed(1),
        width: Math.max(1, w - 2).toFixed(1), height: h.toFixed(1)});
      r.append(sv("title", {}, `${time(k)}: ${buckets.get(k)}`));
      svg.append(r);
    });
    parts.push(svg);
  }
  $("#rejections").replaceChildren(...parts);
}

// --- lineage -----------------------------------------------------------------------------------------
function dl(pairs) {
  const node = el("dl");
  for (const [k, v] of pairs) {
    node.append(el("dt", {text: k}), v instanceof Node ? el("dd", {}, v) : el("dd", {text: v ?? "–"}));
  }
  return node;
}
const box = (cls, title, ...children) => el("div", {class: `box ${cls}`}, el("h3", {text: title}), ...children);

async function openLineage(ref, bet) {
  const dlg = $("#lineage");
  dlg.dataset.ref = ref || "";
  $(".title", dlg).textContent = "Bet lineage";
  $(".body", dlg).replaceChildren(el("p", {class: "empty", text: "loading…"}));
  if (!dlg.open) dlg.showModal();
  if (!ref || !has("/bets/{ref}")) {
    renderValueLineage(bet, ref ? "this API has no /bets/{ref} yet" : "no order was made of this value bet");
    return;
  }
  const resp = await fetch(`/bets/${encodeURIComponent(ref)}`, {headers: {"Accept": "application/json"}});
  if (dlg.dataset.ref !== ref) return;
  if (!resp.ok) {
    const err = await resp.json().catch(() => ({}));
    if (bet) renderValueLineage(bet, err.message || `no lineage (${resp.status})`);
    else $(".body", dlg).replaceChildren(el("p", {class: "error", text: err.message || `no lineage: ${resp.status}`}));
    return;
  }
  renderLineage(await resp.json());
}

function stakeRule(rule, size) {
  if (!rule) return "–";
  const bits = [`${rule.rule || "rule"}:`];
  if (isNum(rule.kelly_fraction)) bits.push(`${rule.kelly_fraction} ×`);
  if (isNum(rule.full_kelly)) bits.push(`full Kelly ${Number(rule.full_kelly).toFixed(4)} ×`);
  if (isNum(rule.bankroll)) bits.push(`bankroll ${money(rule.bankroll)}`);
  if (isNum(rule.at_risk)) bits.push(`= ${money(rule.at_risk)} at risk${rule.at_risk_is ? ` (the ${rule.at_risk_is})` : ""}`);
  if (isNum(rule.max_stake)) bits.push(`, stake capped at ${money(rule.max_stake)}`);
  if (isNum(rule.min_stake)) bits.push(`, none below ${money(rule.min_stake)}`);
  return `${bits.join(" ")} → stake ${money(rule.size ?? size)}`.replaceAll(" ,", ",");
}

function riskValue(v) {
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (!isNum(v)) return v === null || v === undefined ? "–" : String(v);
  return Number.isInteger(Number(v)) ? String(v) : Math.abs(v) < 1 ? Number(v).toFixed(4) : Number(v).toFixed(2);
}

function renderLineage(l) {
  const dlg = $("#lineage");
  const players = l.players;
  learnNames(l.match_id, players);
  const sel = selectionName(l.match_id, l.selection, players, l.selection_name);
  const t = l.trigger || {}, p = l.prediction || {}, d = l.decision || {}, f = l.fate || {};
  $(".title", dlg).textContent = `${l.side} ${sel} @ ${price(d.price)} — ${matchLabel(l.match_id, players)}`;
  const seq = el("span", {class: "seq", "data-seq": t.seq ?? "", text: t.seq ?? "–"});
  const checks = el("table", {class: "risk-checks"}, el("thead", {}, el("tr", {}, el("th", {text: "check"}),
    el("th", {class: "num", text: "value"}), el("th", {class: "num", text: "limit"}), el("th", {text: "result"}))),
  el("tbody", {}, ...(l.risk_checks || []).map((c) => el("tr", {"data-check": c.check, "data-passed": String(c.passed),
    "data-value": c.value ?? "", "data-limit": c.limit ?? "", title: unlabel(c.detail, l.match_id, players) || ""},
  el("td", {text: word(c.check)}), el("td", {class: "num", text: riskValue(c.value)}),
  el("td", {class: "num", text: riskValue(c.limit)}),
  el("td", {class: "verdict", text: c.passed ? "pass" : "FAIL"})))));
  if (!(l.risk_checks || []).length) checks.append(el("caption", {class: "empty", text: "no risk check ran"}));
  const st = l.settlement;
  const fate = el("div", {class: "fate-box"},
    el("p", {class: `fate fate-${f.status}`, "data-status": f.status || "", text: word(f.status) +
      (f.reason ? `: ${word(f.reason)}` : "")}),
    f.message ? el("p", {class: "note", text: unlabel(f.message, l.match_id, players)}) : null,
    st ? dl([["result", st.result], ["profit", el("span", {class: sign(st.profit), text: signed(st.profit)})],
      ["winner", st.winner_name || selectionName(l.match_id, st.winner, players)], ["settled", dateTime(st.settled_at)]]) : null);
  const timeline = el("ol", {class: "timeline"}, ...(l.timeline || []).map((e) => el("li", {"data-kind": e.kind,
    "data-event-id": e.event_id ?? ""},
  `${dateTime(e.event_time)} · `, el("b", {text: word(e.kind)}),
  e.seq !== null && e.seq !== undefined ? ` · ${e.feed || "feed"} #${e.seq}` : "", e.summary ? ` — ${unlabel(e.summary, l.match_id, players)}` : "")));
  $(".body", dlg).replaceChildren(
    el("p", {class: "note", title: `market ${l.market_id || "–"}`,
      text: `order ${l.ref} · ${l.market_id ? marketKind(l.market_id) : "no market"} · ${l.source || ""}`}),
    el("div", {class: "grid2"},
      box("trigger", "Trigger (feed message)", dl([["feed", t.feed], ["channel", t.channel], ["sequence", seq],
        ["message", t.kind ? word(t.kind) + (t.message?.kind ? ` (${word(t.message.kind)})` : "") : null],
        ["event id", t.event_id], ["event time", dateTime(t.event_time)]])),
      box("prediction", "Prediction", dl([["model", el("span", {class: "model-name", text: p.model ?? "–"})],
        ["version", el("span", {class: "model-version", text: p.version ?? "–"})],
        ["data version", el("span", {class: "data-version", text: p.data_version ?? "–"})],
        [`P(${sel})`, pct(p.probability)], ["market fair P", pct(p.market_probability)], ["score", p.score],
        ["points played", p.points_played]])),
      box("decision", "Decision", dl([["bet", `${l.side} ${sel}`], ["price", price(d.price)],
        ["fair price", price(d.fair_price)], ["edge", el("span", {class: "tip", title: EDGE_TIP, text: pct(d.edge)})],
        ["stake", money(d.size)], ["stake rule", el("span", {class: "stake-rule", text: stakeRule(d.stake_rule, d.size)})],
        ["within limits", d.within_limits === undefined ? "–" : d.within_limits ? "yes" : "no"],
        ["why", unlabel(d.reason, l.match_id, players)]])),
      box("fate-section", "Fate", fate)),
    el("h3", {text: "Risk checks"}), checks,
    el("h3", {text: "Timeline"}), timeline);
}

/** A value bet without an order (not staked, or an API without lineage): what the value bet itself says. */
function renderValueLineage(b, why) {
  const dlg = $("#lineage");
  if (!b) {
    $(".body", dlg).replaceChildren(el("p", {class: "error", text: why}));
    return;
  }
  const sel = selectionName(b.match_id, b.selection, b.players, b.selection_name);
  const f = fateText(b);
  $(".title", dlg).textContent = `${b.side} ${sel} @ ${price(b.price)} — ${matchLabel(b.match_id, b.players)}`;
  $(".body", dlg).replaceChildren(el("p", {class: "note", text: why}),
    el("div", {class: "grid2"},
      box("prediction", "Prediction", dl([[`P(${sel})`, pct(b.model_probability)], ["score", b.score],
        ["at", dateTime(b.ts)]])),
      box("decision", "Decision", dl([["bet", `${b.side} ${sel}`], ["price", price(b.price)],
        ["fair price", price(b.fair_price)], ["edge", el("span", {class: "tip", title: EDGE_TIP, text: pct(b.edge)})],
        ["stake", money(b.size)], ["why", unlabel(b.reason, b.match_id, b.players)]])),
      box("fate-section", "Fate", el("p", {class: `fate fate-${f.status}`, "data-status": f.status, text: f.text}),
        f.title ? el("p", {class: "note", text: f.title}) : null)));
}

// --- status chips ----------------------------------------------------------------------------------
function chip(id, text, kind, title) {
  const c = $("#" + id);
  c.textContent = text;
  c.dataset.state = kind;
  if (title) c.title = title;
}

function qualityChip(dq) {
  if (dq.status === "unknown" || !dq.status) {
    chip("dq-status", "data quality: unknown", "warn", dq.reason || "no data-quality report");
    return;
  }
  const when = toDate(dq.evaluated_at);
  const failed = (dq.failed_expectations || []).length;
  const total = isNum(dq.expectations) ? Number(dq.expectations) : null;
  let result;
  if (!when) result = dq.status === "running" ? "check running, no result yet" : word(dq.status);
  else if (dq.status === "passed") result = total !== null ? `passed ${total - failed}/${total} checks` : "passed";
  else if (dq.status === "failed") result = total !== null ? `FAILED ${failed} of ${total} checks` : "FAILED";
  else result = word(dq.status) + (total !== null ? ` (${total - failed}/${total} passed)` : "");
  const stale = when && Date.now() - when.getTime() > 30 * 60 * 1000;
  const kind = dq.status === "failed" || dq.status === "error" || failed ? "bad" : !when || stale ? "warn" : "ok";
  chip("dq-status", `data quality: ${result}${when ? " · " + ago(when) : ""}`, kind,
    [dq.description || `${dq.check || "gx_live_events"} on ${dq.asset || "the live log"}`,
      when ? `evaluated ${dateTime(when)}${stale ? " (stale: older than 30 min)" : ""}` : "",
      dq.evaluated_rows != null ? `${dq.evaluated_rows} rows` : "",
      failed ? "failed: " + dq.failed_expectations.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(", ") : "", dq.run_id ? `run ${dq.run_id}` : ""]
      .filter(Boolean).join("\n"));
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
  qualityChip(dq);
  const src = dq.sources || {}, lg = dq.live_log || {};
  const srcText = src.status === "known" ? `sources ${src.fresh}/${src.checked} fresh` : "sources ?";
  const logText = lg.age_s != null ? `log ${lg.age_s} s old` : "log empty";
  chip("fresh-status", `freshness: ${srcText} · ${logText}`,
    src.status === "known" && src.fresh === src.checked && lg.fresh ? "ok" : "warn",
    (src.sources || []).map((x) => `${x.dataset}: ${x.status}` + (x.newest_record ? ` (newest ${x.newest_record})` : ""))
      .join("; ") || (src.reason || ""));
  renderServices(s.services);
  const over = $("#replay-over");  // the end of a replay: say so, and how to start another
  over.hidden = !(s.replay && s.replay.over);
  over.textContent = over.hidden ? "" : `Replay over: ${s.replay.hint}`;
  const c = s.controls || {};
  const e = (s.engines || [])[0];
  if (c.kill_switch) chip("engine-status", "engine: KILL SWITCH", "bad");
  else if (c.paused) chip("engine-status", "engine: paused", "warn");
  else if (!e) chip("engine-status", "engine: no heartbeat", "warn");
  else chip("engine-status", `engine: ${e.age_s < 30 ? "running" : "silent " + Math.round(e.age_s) + " s"}`,
    e.age_s < 30 ? "ok" : "warn", `${e.status.messages} messages, ${e.status.orders} orders`);
  const mode = e && e.status ? e.status.mode || "paper" : null;
  const venue = e && e.status ? e.status.venue || "replay" : null;
  chip("mode-status", mode ? `${mode.toUpperCase()} · feed: ${venue}` : "mode: ?",
    mode ? "" : "warn", mode === "paper-live" ? "real prices, paper exchange: no money is at stake"
      : "simulated market, paper exchange: no money is at stake");
  setReplay(venue === "replay");
  const feedTime = e && e.status ? e.status.feed_time : null;
  chip("feed-clock", `${state.replay ? "replay clock" : "feed clock"}: ${feedTime ? dateTime(feedTime) : "?"}`, "",
    (state.replay ? "the replay's clock, not the time now: event times of the recorded matches" : "the feed's clock")
      + ` (your time zone, ${TZ})`);
}

function setReplay(replay) {
  state.replay = replay;
  for (const th of $$("th.time-col")) {
    th.dataset.base = th.dataset.base || th.textContent;
    th.textContent = th.dataset.base + (replay ? " (replay clock)" : "");
    th.title = `${replay ? "the replay's clock (event time)" : "event time"}, in your time zone (${TZ})`;
  }
}

// --- the supervised services (make up's supervisor) -----------------------------------------------
function renderServices(sv_) {
  const banner = $("#crash-loop-banner");
  const body = $("#services tbody");
  if (!sv_ || sv_.supervisor === "none") {
    chip("services-status", "services: not supervised", "", "the API runs without make up's supervisor");
    banner.hidden = true;
    body.replaceChildren(el("tr", {}, el("td", {colspan: "6", class: "empty", text: "no supervisor report"})));
    return;
  }
  const items = sv_.items || [];
  const restarts = items.reduce((n, r) => n + (r.restarts || 0), 0);
  const running = items.filter((r) => r.state === "running").length;
  const title = items.map((r) => `${r.service}: ${r.state}, ${r.restarts} restarts` +
    (r.last_exit ? ` (last: ${r.last_exit})` : "")).join("\n");
  if (sv_.crash_loop.length) chip("services-status", `services: CRASH LOOP (${sv_.crash_loop.join(", ")})`, "bad", title);
  else if (sv_.supervisor === "silent") chip("services-status", "services: supervisor silent", "warn", title);
  else if (sv_.supervisor === "stopped") chip("services-status", "services: stopped", "warn", title);
  else chip("services-status", `services: ${running}/${items.length} up` + (restarts ? `, ${restarts} restarts` : ""),
    restarts ? "warn" : "ok", title);
  const pause = sv_.betting_paused;
  if (pause) {
    banner.replaceChildren(`Betting paused by the supervisor: ${pause.reason}`,
      el("small", {text: `since ${dateTime(pause.since)} (controls v${pause.controls_version}); an operator resumes it ` +
        "(resume in the controls below, with the operator token) once the cause is fixed — see the service's log"}));
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  body.replaceChildren(...items.map((r) => el("tr", {"data-state": r.state, "data-crash-loop": String(!!r.crash_loop),
    title: r.crash_loop_reason || ""},
  el("td", {text: r.service + (r.crash_loop ? " (crash loop)" : "")}), el("td", {class: "state", text: r.state}),
  el("td", {text: r.pid ?? "–"}), el("td", {text: String(r.restarts)}), el("td", {text: r.last_exit || "–"}),
  el("td", {text: time(r.last_crash_at)}))));
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
    el("td", {text: r.method}), el("td", {text: dateTime(r.first_seen)}))));
}

// --- operator controls ---------------------------------------------------------------------------------
const LIMIT_FIELDS = ["max_stake", "max_selection_exposure", "max_market_exposure", "max_total_exposure",
  "daily_loss_limit", "weekly_loss_limit", "daily_profit_target", "min_edge", "min_confidence", "min_price",
  "max_price", "max_open_orders", "max_orders_per_hour", "bankroll_floor"];
const INT_FIELDS = new Set(["max_open_orders", "max_orders_per_hour"]);

async function operatorCall(method, path, body) {
  const token = opToken();
  if (!token) throw new Error("enter the operator token first");
  const resp = await fetch(path, {method, headers: {"Accept": "application/json", "Authorization": `Bearer ${token}`,
    ...(body ? {"Content-Type": "application/json"} : {})}, body: body ? JSON.stringify(body) : undefined});
  const json = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const fields = (json.detail || []).map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    throw new Error(`${resp.status} ${json.message || resp.statusText}${fields ? " — " + fields : ""}`);
  }
  return json;
}

function tokenState() {
  const s = $("#controls .token-state");
  const set = Boolean(opToken());
  s.dataset.state = set ? "set" : "";
  s.textContent = set ? "token set for this tab (sessionStorage only; never sent in a URL)"
    : "no token: kept for this tab only (sessionStorage), never in a URL";
  for (const b of $$("#controls button[data-action]")) {
    if (!["save-token", "forget-token"].includes(b.dataset.action)) b.disabled = !set;
  }
}

function ack(text, kind) {
  const a = $("#controls .ack");
  a.textContent = text;
  a.dataset.state = kind;
}

function buildLimitsForm() {
  $("#controls .risk-limits tbody").replaceChildren(...LIMIT_FIELDS.map((f) => el("tr", {"data-field": f},
    el("td", {text: word(f)}), el("td", {class: "num in-force"}), el("td", {class: "num override"}),
    el("td", {}, el("input", {type: "number", name: f, step: INT_FIELDS.has(f) ? "1" : "any",
      "aria-label": `new ${word(f)}`})),
    el("td", {}, el("button", {type: "button", "data-action": "unset", "data-field": f, text: "remove override"})))));
}

function renderControls(c) {
  state.controls = c;
  const k = c.controls;
  $("#controls .control-state").replaceChildren(el("p", {},
    el("b", {class: k.kill_switch ? "neg" : k.paused ? "" : "pos",
      text: k.kill_switch ? "KILL SWITCH ENGAGED" : k.paused ? "betting PAUSED" : "betting on"}),
    ` · controls v${k.version}` + (k.changed_at ? ` by ${k.changed_by} at ${dateTime(k.changed_at)}` : "")
      + (k.reason ? ` — ${k.reason}` : "")));
  for (const row of $$("#controls .risk-limits tbody tr")) {
    const f = row.dataset.field;
    const v = c.effective_risk_limits[f];
    $(".in-force", row).textContent = v === null || v === undefined ? "off" : String(v);
    $(".override", row).textContent = f in k.risk_limits ? String(k.risk_limits[f]) : "–";
    $("button[data-action=unset]", row).hidden = !(f in k.risk_limits);
  }
  $("#controls .engines tbody").replaceChildren(...(c.engines.length ? c.engines.map((e) => el("tr",
    {"data-engine": e.engine, "data-in-force": String(e.in_force)},
    el("td", {text: e.engine}), el("td", {text: `v${e.controls_version}`}),
    el("td", {class: e.in_force ? "pos" : "neg", text: e.in_force ? "yes" : "not yet"}),
    el("td", {text: `${dateTime(e.updated_at)} (${e.age_s} s ago)`})))
    : [el("tr", {}, el("td", {colspan: "4", class: "empty", text: "no engine heartbeat"}))]));
  $("#controls .history tbody").replaceChildren(...c.history.map((h) => el("tr", {"data-version": String(h.version)},
    el("td", {text: `v${h.version}`}), el("td", {text: dateTime(h.changed_at)}), el("td", {text: h.changed_by ?? "–"}),
    el("td", {text: h.paused ? "paused" : "–"}), el("td", {class: h.kill_switch ? "neg" : "", text: h.kill_switch ? "ENGAGED" : "–"}),
    el("td", {text: Object.entries(h.risk_limits || {}).map(([f, v]) => `${word(f)} ${v}`).join(", ") || "–"}),
    el("td", {text: h.reason ?? "–"}))));
  if (!c.history.length) {
    $("#controls .history tbody").replaceChildren(el("tr", {}, el("td", {colspan: "7", class: "empty",
      text: "no change yet: the engines run with their configured controls"})));
  }
}

/** Whether every engine has ``version`` of the controls in force (their heartbeat), shown in ``.ack``. */
function showAck(c, version) {
  const engines = c.engines || [];
  const done = engines.filter((e) => e.controls_version >= version && e.in_force).length;
  if (!engines.length) { ack(`controls v${version} recorded; no engine heartbeat to confirm it`, "warn"); return true; }
  if (done === engines.length) {
    ack(`v${version} acknowledged by ${done === 1 ? "the engine" : `all ${done} engines`} (in force)`, "ok");
    return true;
  }
  ack(`controls v${version} recorded; waiting for the engines to apply it (${done} of ${engines.length})…`, "warn");
  return false;
}

async function watchAck(version) {
  const token = ++state.ackWatch;
  const deadline = Date.now() + 60000;
  while (state.ackWatch === token) {
    let c;
    try { c = await operatorCall("GET", "/control"); } catch (e) { ack(e.message, "bad"); return; }
    if (state.ackWatch !== token) return;
    renderControls(c);
    if (showAck(c, version)) return;
    if (Date.now() > deadline) { ack(`v${version}: no engine has applied it after 60 s — check the engine`, "bad"); return; }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function refreshControls() {
  if (!opToken()) return;
  try {
    renderControls(await operatorCall("GET", "/control"));
  } catch (e) { ack(e.message, "bad"); }
}

function confirmDialog(message) {
  const dlg = $("#confirm");
  $(".message", dlg).textContent = message;
  return new Promise((resolve) => {
    const done = (ok) => {
      $("[data-confirm=yes]", dlg).onclick = $("[data-confirm=no]", dlg).onclick = dlg.oncancel = null;
      if (dlg.open) dlg.close();
      resolve(ok);
    };
    $("[data-confirm=yes]", dlg).onclick = () => done(true);
    $("[data-confirm=no]", dlg).onclick = () => done(false);
    dlg.oncancel = (ev) => { ev.preventDefault(); done(false); };
    dlg.showModal();
    $("[data-confirm=no]", dlg).focus();
  });
}

async function controlAction(action, field) {
  const reason = $("#controls input[name=reason]").value.trim() || null;
  const withReason = reason ? {reason} : {};
  let call, question;
  if (action === "pause") [call, question] = [["POST", "/control/pause", withReason], "Pause betting? No new orders until resumed."];
  else if (action === "resume") [call, question] = [["POST", "/control/resume", withReason], "Resume betting?"];
  else if (action === "kill") {
    [call, question] = [["POST", "/control/kill-switch", {engaged: true, ...withReason}],
      "Engage the KILL SWITCH? Nothing is accepted (hedges included) and resting orders are cancelled."];
  } else if (action === "release") {
    [call, question] = [["POST", "/control/kill-switch", {engaged: false, ...withReason}], "Release the kill switch?"];
  } else if (action === "unset") {
    [call, question] = [["PUT", "/control/risk-limits", {[field]: null, ...withReason}],
      `Remove the override of ${word(field)}?`];
  } else if (action === "limits") {
    const body = {};
    for (const input of $$("#controls .risk-limits input")) {
      if (input.value.trim() === "") continue;
      const v = Number(input.value);
      if (!Number.isFinite(v) || (INT_FIELDS.has(input.name) && !Number.isInteger(v))) {
        ack(`${word(input.name)}: ${input.value} is not a valid ${INT_FIELDS.has(input.name) ? "whole number" : "number"}`, "bad");
        return;
      }
      body[input.name] = v;
    }
    if (!Object.keys(body).length) { ack("enter a new value for a limit first", "bad"); return; }
    [call, question] = [["PUT", "/control/risk-limits", {...body, ...withReason}],
      "Override " + Object.entries(body).map(([f, v]) => `${word(f)} = ${v}`).join(", ") + "?"];
  } else return;
  if (!(await confirmDialog(question))) { ack("cancelled: nothing changed", ""); return; }
  state.ackWatch++;  // a watch of an earlier change stops: this one is shown
  ack("sending…", "");
  try {
    const c = await operatorCall(...call);
    renderControls(c);
    if (action === "limits") for (const input of $$("#controls .risk-limits input")) input.value = "";
    showAck(c, c.controls.version);
    loadStatus().catch(console.warn);
    watchAck(c.controls.version);
  } catch (e) { ack(e.message, "bad"); }
}

function initControls() {
  buildLimitsForm();
  $("#controls form.token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("#controls input[name=token]");
    const token = input.value.trim();
    input.value = "";
    if (!token) return;
    sessionStorage.setItem(OP_TOKEN_KEY, token);
    tokenState();
    ack("", "");
    refreshControls();
    subscribeLedger();
  });
  $("#controls").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b || b.type === "submit") return;
    if (b.dataset.action === "forget-token") {
      sessionStorage.removeItem(OP_TOKEN_KEY);
      tokenState();
      ack("token forgotten", "");
      return;
    }
    controlAction(b.dataset.action, b.dataset.field).catch((e) => ack(e.message, "bad"));
  });
  tokenState();
  refreshControls();
}

// --- clicks: lineage, match view, dialogs ----------------------------------------------------------
function initClicks() {
  document.addEventListener("click", (ev) => {
    const t = ev.target;
    if (t.closest("[data-close]")) { t.closest("dialog").close(); return; }
    const marker = t.closest(".bet-marker[data-ref]");
    if (marker) { openLineage(marker.dataset.ref).catch(console.warn); return; }
    const vrow = t.closest("#value-bets tbody tr[data-id]");
    if (vrow) {
      const b = state.valueBets.get(Number(vrow.dataset.id))?.bet;
      openLineage(b?.ref, b).catch(console.warn);
      return;
    }
    const row = t.closest("table.clickable tbody tr[data-ref]");
    if (row) { openLineage(row.dataset.ref).catch(console.warn); return; }
    const card = t.closest("#matches .card[data-match-id], #exposure tr[data-match-id]");
    if (card) openMatch(card.dataset.matchId).catch(console.warn);
  });
  document.addEventListener("keydown", (ev) => {
    const card = ev.target.closest?.("#matches .card[data-match-id]");
    if (card && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); openMatch(card.dataset.matchId).catch(console.warn); }
  });
  $("#match-view").addEventListener("close", () => { state.view = null; });
  $("#lineage").addEventListener("close", () => { $("#lineage").dataset.ref = ""; });
  $("#show-all-value").addEventListener("change", (ev) => $("#value-bets").classList.toggle("show-all", ev.target.checked));
  $("#alert-value").addEventListener("change", (ev) => {
    // a user's gesture: the browser lets the page make sound from now on
    if (ev.target.checked && !state.audio) try { state.audio = new AudioContext(); } catch (e) { console.warn(e); }
  });
}

// --- the WebSocket -----------------------------------------------------------------------------
function onMessage(msg) {
  const v = state.view;
  switch (msg.type) {
    case "game_event": ensureMatch(msg.data); break;
    case "odds_update": {
      const m = state.matches.get(msg.match_id);
      if (m) { m.summary.market_probability = msg.data.market_probability; renderCard(m); }
      if (v && v.id === msg.match_id && msg.data.market_id) { v.markets[msg.data.market_id] = msg.data; renderBook(); }
      break;
    }
    case "prediction_update":
      if (msg.data.phase === "inplay") {
        const m = state.matches.get(msg.match_id);
        if (m) { m.summary.probability = msg.data.probability; addPoint(msg.match_id, msg.data); renderCard(m); }
      }
      break;
    case "value_bet": addValueBet(msg.data, true); break;
    case "bet_update":
      onBetUpdate(msg.data);
      later("figures", loadFigures, 2000);
      later("exposure", loadExposure, 1000);
      if (v && v.id === msg.match_id) later("viewbets", loadViewBets, 1000);
      break;
    case "bankroll_update":
      later("bankroll", loadBankroll); later("settled", loadSettled); later("figures", loadFigures);
      later("exposure", loadExposure);
      break;
  }
}

function subscribeLedger() {
  const ws = state.ws, token = readToken || opToken();
  if (!ws || ws.readyState !== WebSocket.OPEN || !token || state.rooms.ledger.session) return;
  ws.send(JSON.stringify({type: "subscribe", match_id: "ledger", token}));
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
      const token = readToken || opToken();
      if (name === "ledger" && token) msg.token = token;
      if (r.seq !== null) { msg.last_seq = r.seq; msg.session = r.session; }
      ws.send(JSON.stringify(msg));
    }
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    $("#clock").textContent = "last message " + DATE_TIME.format(new Date()) + ` (your time, ${TZ})`;
    if (msg.type === "subscribed") {
      const r = state.rooms[msg.room];
      if (!r) return;
      r.session = msg.session;
      if (msg.gap) {  // missed messages are gone: take the snapshot and refetch what it does not carry
        if (msg.room === "ledger") { loadOpen(); loadSettled(); loadBankroll(); loadExposure(); }
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
  $("#tz-note").textContent = `Times are in your time zone (${TZ}).`;
  initClicks();
  initControls();
  try {
    state.api = new Set(Object.keys((await getJSON("/openapi.json")).paths || {}));
  } catch (e) { console.warn("no OpenAPI document:", e); }
  state.config = await getJSON("/live/config");
  state.startBankroll = state.config.bankroll;
  await Promise.all([loadStatus(), loadBankroll(), loadOpen(), loadSettled(), loadFigures(), loadIdentity(),
    loadExposure()].map((p) => p.catch(console.warn)));
  try {
    for (const bet of (await getJSON("/live/value-bets?limit=200")).reverse()) addValueBet(bet, false);
  } catch (e) { console.warn(e); }
  connect();
  setInterval(() => loadStatus().catch(console.warn), 10000);
  setInterval(() => loadIdentity().catch(console.warn), 30000);
  setInterval(() => loadFigures().catch(console.warn), 15000);
  setInterval(() => loadExposure().catch(console.warn), 5000);
  setInterval(() => { if (opToken()) refreshControls(); }, 15000);
}

main().catch((e) => chip("ws-status", "dashboard failed to start: " + e.message, "bad"));
