// The wall screen: draws the board from the coordinator's event stream and
// keeps it current without reloading. The first message is the whole board;
// then each update replaces the cells that changed. If the connection drops,
// the page says since when, and the browser reconnects on its own, sending the
// last sequence it saw (Last-Event-ID), so the coordinator sends what it missed.
"use strict";

let board = null;
let disconnectedSince = null;

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function elapsed(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mm = Math.floor(s / 60), ss = String(s % 60).padStart(2, "0");
  return mm + ":" + ss;
}

function clockText(date) {
  return date.toISOString().slice(11, 19) + "Z";
}

function cellKey(c) { return c.project + "/" + c.environment; }

function drawCell(c) {
  const a = el("a", "cell");
  a.href = "/targets/" + encodeURIComponent(c.project) + "/" + encodeURIComponent(c.environment);
  a.dataset.cell = cellKey(c);
  a.dataset.release = c.release || "";
  a.dataset.phase = c.in_flight ? c.in_flight.phase : "";
  a.dataset.alarm = c.alarm ? "1" : "0";
  a.dataset.queued = String(c.queued);
  a.dataset.lost = String(c.lost_agents.length);
  if (c.alarm) a.classList.add("alarm");
  if (c.in_flight) a.classList.add("busy");
  const top = el("div");
  top.appendChild(el("span", "release", c.release || "—"));
  // Short, as git shows it: which source the running binaries came from.
  if (c.commit) top.appendChild(el("span", "commit", c.commit.slice(0, 7)));
  if (c.release_since_ms) {
    const s = el("span", "age");
    s.dataset.since = String(c.release_since_ms);
    top.appendChild(s);
  }
  a.appendChild(top);
  if (c.in_flight) {
    const f = el("div", "flight");
    f.dataset.since = String(c.in_flight.phase_since_ms);
    f.dataset.text = "→ " + c.in_flight.version + " " + c.in_flight.phase + " ";
    a.appendChild(f);
  }
  if (c.queued > 0) a.appendChild(el("div", "queued", "+" + c.queued + " queued"));
  if (c.lost_agents.length > 0) {
    a.appendChild(el("div", "lost", c.lost_agents.length + " agent" +
      (c.lost_agents.length > 1 ? "s" : "") + " lost"));
  }
  if (c.alarm) {
    const w = el("div", "why", c.alarm);
    w.title = c.alarm;
    a.appendChild(w);
  }
  return a;
}

function drawBoard() {
  const main = $("board");
  main.replaceChildren();
  // minmax(0, 1fr): equal columns, whatever a cell's text.
  main.style.gridTemplateColumns = "minmax(6rem, auto) repeat(" + board.environments.length + ", minmax(0, 1fr))";
  main.appendChild(el("div", "corner", ""));
  for (const env of board.environments) main.appendChild(el("div", "colhead", env));
  const byKey = new Map(board.cells.map((c) => [cellKey(c), c]));
  for (const project of board.projects) {
    main.appendChild(el("div", "rowhead", project));
    for (const env of board.environments) {
      const c = byKey.get(project + "/" + env);
      if (c) main.appendChild(drawCell(c));
    }
  }
  drawPublic();
  drawRecent();
  tick();
}

function drawPublic() {
  const p = $("public");
  p.replaceChildren();
  for (const r of board.public) {
    const s = el("span", "", r.record + " → " + (r.environment || "nowhere yet") +
      (r.pending ? " (moving)" : ""));
    s.dataset.public = r.project;
    s.dataset.environment = r.environment || "";
    p.appendChild(s);
  }
}

function drawRecent() {
  const list = $("recent");
  list.replaceChildren();
  for (const e of board.recent.slice().reverse()) {
    list.appendChild(el("li", "", clockText(new Date(e.at)) + "  " + e.summary));
  }
}

function apply(update) {
  for (const c of update.cells) {
    const i = board.cells.findIndex((x) => cellKey(x) === cellKey(c));
    if (i >= 0) board.cells[i] = c; else board.cells.push(c);
    const old = document.querySelector('[data-cell="' + CSS.escape(cellKey(c)) + '"]');
    if (old) old.replaceWith(drawCell(c));
  }
  if (update.public.length > 0) { board.public = update.public; drawPublic(); }
  // A page that connected mid-update may already show some of these.
  const newest = board.recent.length > 0 ? board.recent[board.recent.length - 1].seq : 0;
  const fresh = update.events.filter((e) => e.seq > newest);
  if (fresh.length > 0) {
    board.recent = board.recent.concat(fresh).slice(-12);
    drawRecent();
  }
  board.seq = update.seq;
  tick();
}

// Ages and elapsed times move every second without any message.
function tick() {
  const now = Date.now();
  for (const s of document.querySelectorAll(".age[data-since]")) {
    s.textContent = age(now - Number(s.dataset.since));
  }
  for (const f of document.querySelectorAll(".flight[data-since]")) {
    f.textContent = f.dataset.text + elapsed(now - Number(f.dataset.since));
  }
  $("clock").textContent = clockText(new Date(now));
}

function connectionState(text, cls) {
  const c = $("connection");
  c.textContent = text;
  c.className = "connection " + cls;
}

function connect() {
  const source = new EventSource("/stream");
  source.addEventListener("board", (m) => { board = JSON.parse(m.data); drawBoard(); });
  source.addEventListener("update", (m) => { if (board) apply(JSON.parse(m.data)); });
  source.addEventListener("missed", (m) => {
    const missed = JSON.parse(m.data);
    if (board && missed.length > 0) {
      board.recent = board.recent.concat(missed.filter((e) => !board.recent.some((r) => r.seq === e.seq)))
        .sort((a, b) => a.seq - b.seq).slice(-12);
      drawRecent();
    }
  });
  source.addEventListener("revoked", () => {
    source.close();
    connectionState("access revoked: ask an admin for a new dashboard URL", "down");
  });
  source.onopen = () => { disconnectedSince = null; connectionState("live", "live"); };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused, not unreachable: the token was revoked or the page is stale.
      connectionState("refused by the coordinator: reload, or ask an admin for a new dashboard URL", "down");
      return;
    }
    if (!disconnectedSince) disconnectedSince = new Date();
    connectionState("disconnected since " + clockText(disconnectedSince) + "; reconnecting", "down");
  };
}

setInterval(tick, 1000);
connect();
