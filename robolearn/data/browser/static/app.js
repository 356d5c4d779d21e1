// robolearn dataset browser: catalog table, synchronized episode player, plots and relabel controls.
// Plain browser JavaScript, no build step and no network access beyond this page's own server.
"use strict";

const TOKEN = document.querySelector('meta[name="robolearn-token"]').content;
const FACETS = ["lab", "household", "scene_id", "task", "operator"];
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const MAX_INFLIGHT = 8;
const SVG_NS = "http://www.w3.org/2000/svg";
const PLOT_W = 1000;
const PLOT_H = 110;

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, children = []) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const encodePath = (p) => p.split("/").map(encodeURIComponent).join("/");
const successWord = (v) => ({ 1: "success", 0: "failure" })[v] || "unknown";

async function api(path, options = {}) {
  const r = await fetch(path, options);
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

// ---- catalog table ----------------------------------------------------------------------------------------
const list = { seq: 0, loaded: false, timer: null };

function filterParams(extra = {}) {
  const q = new URLSearchParams();
  for (const name of [...FACETS, "success"]) {
    const v = $(`#f-${name}`).value;
    if (v) q.append(name, v);
  }
  const date = $("#f-date").value.trim();
  if (date) q.append("date", date);
  for (const w of $("#f-where").value.split(/[;\n]/)) if (w.trim()) q.append("where", w.trim());
  for (const [k, v] of Object.entries(extra)) q.append(k, v);
  return q;
}

async function loadEpisodes(extra = {}) {
  const seq = ++list.seq;
  $("#list-error").textContent = "";
  let data;
  try {
    data = await api(`/api/episodes?${filterParams(extra)}`);
  } catch (e) {
    if (seq === list.seq) $("#list-error").textContent = e.message;
    return;
  }
  if (seq !== list.seq) return; // a newer request was made meanwhile
  $("#root").textContent = data.root;
  fillFacets(data.facets);
  renderRows(data);
  list.loaded = true;
}

function fillFacets(facets) {
  for (const name of FACETS) {
    const sel = $(`#f-${name}`);
    const current = sel.value;
    const values = facets[name] || [];
    const have = [...sel.options].slice(1).map((o) => o.value);
    if (have.length === values.length && have.every((v, i) => v === values[i])) continue;
    sel.replaceChildren(el("option", { value: "", text: "all" }), ...values.map((v) => el("option", { value: v, text: v })));
    if (values.includes(current)) sel.value = current;
  }
}

function renderRows(data) {
  const tbody = $("#episodes tbody");
  const rows = data.episodes.map((r) => {
    const tr = el("tr", { dataset: { path: r.path }, tabindex: "0" }, [
      el("td", { class: "mono", text: r.path }), el("td", { text: r.lab }), el("td", { text: r.household }),
      el("td", { text: r.scene_id }), el("td", { text: r.task }),
      el("td", { class: `label ${r.success_word}`, text: r.success_word }), el("td", { text: r.operator }),
      el("td", { class: "num", text: String(r.num_steps) }), el("td", { class: "mono", text: r.start_time }),
    ]);
    const open = () => { location.hash = `#/episode/${encodePath(r.path)}`; };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
    return tr;
  });
  tbody.replaceChildren(...rows);
  const shown = data.truncated ? `${data.episodes.length} shown of ` : "";
  $("#count").textContent = `${shown}${data.count} of ${data.total} episodes`;
  const un = $("#unreadable");
  un.hidden = !data.unreadable_count;
  if (data.unreadable_count) {
    un.querySelector("summary").textContent = `${data.unreadable_count} unreadable files (not in the table)`;
    un.querySelector("ul").replaceChildren(...data.unreadable.map((u) => el("li", { text: `${u.path}: ${u.field}: ${u.message}` })));
  }
}

function setupFilters() {
  for (const name of [...FACETS, "success"]) $(`#f-${name}`).addEventListener("change", () => loadEpisodes());
  for (const id of ["#f-date", "#f-where"]) {
    $(id).addEventListener("input", () => {
      clearTimeout(list.timer);
      list.timer = setTimeout(() => loadEpisodes(), 300);
    });
  }
  $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadEpisodes(); });
  $("#f-clear").addEventListener("click", () => {
    for (const name of [...FACETS, "success"]) $(`#f-${name}`).value = "";
    $("#f-date").value = "";
    $("#f-where").value = "";
    loadEpisodes();
  });
  $("#rescan").addEventListener("click", () => loadEpisodes({ refresh: "1" }));
}

// ---- player -----------------------------------------------------------------------------------------------
// Frames of every camera are requested ahead of the cursor (at most MAX_INFLIGHT at once); playback moves to
// step t+1 only when t+1 has arrived for all cameras, so the streams never drift apart.
class Player {
  constructor(ep, views) {
    this.ep = ep;
    this.n = ep.num_steps;
    this.hz = ep.control_hz > 0 ? ep.control_hz : 15;
    this.views = views; // [{cam, img}]
    this.t = 0;
    this.speed = 1;
    this.playing = false;
    this.cache = new Map(); // "cam\nt" -> {cam, t, state: queued|loading|ready|error, img}
    this.queue = [];
    this.inflight = 0;
    this.timer = null;
    this.onstep = () => {};
    this.onplay = () => {};
    this.alive = true;
  }

  url(cam, t) { return `/api/frame/${encodePath(this.ep.path)}/${encodeURIComponent(cam)}/${t}`; }
  ahead() { return Math.max(16, Math.ceil(this.hz * this.speed * 2)); }

  want(t) {
    const end = Math.min(this.n, t + this.ahead());
    for (let s = t; s < end; s++) {
      for (const { cam } of this.views) {
        const k = `${cam}\n${s}`;
        if (!this.cache.has(k)) {
          this.cache.set(k, { cam, t: s, state: "queued", img: null });
          this.queue.push(k);
        }
      }
    }
    this.pump();
  }

  pump() {
    while (this.alive && this.inflight < MAX_INFLIGHT && this.queue.length) {
      const k = this.queue.shift();
      const e = this.cache.get(k);
      if (!e || e.state !== "queued") continue;
      e.state = "loading";
      this.inflight++;
      const img = new Image();
      e.img = img; // keeps the decoded image alive in the browser's memory cache
      const done = (ok) => {
        this.inflight--;
        e.state = ok ? "ready" : "error";
        this.pump();
      };
      img.onload = () => done(true);
      img.onerror = () => done(false);
      img.src = this.url(e.cam, e.t);
    }
  }

  ready(t) {
    return this.views.every(({ cam }) => {
      const e = this.cache.get(`${cam}\n${t}`);
      return e && (e.state === "ready" || e.state === "error");
    });
  }

  show(t) {
    this.t = Math.max(0, Math.min(this.n - 1, t));
    for (const { cam, img } of this.views) {
      const url = this.url(cam, this.t);
      if (img.getAttribute("src") !== url) img.src = url;
    }
    this.evict();
    this.want(this.t);
    this.onstep(this.t);
  }

  seek(t) {
    // drop queued (not yet started) requests so the frames around the new position come first
    for (const k of this.queue) {
      const e = this.cache.get(k);
      if (e && e.state === "queued") this.cache.delete(k);
    }
    this.queue = [];
    this.show(t);
  }

  evict() {
    const limit = 4 * this.ahead() * this.views.length;
    if (this.cache.size <= limit) return;
    for (const [k, e] of this.cache) {
      if (e.state !== "loading" && (e.t < this.t - 4 || e.t > this.t + 2 * this.ahead())) this.cache.delete(k);
    }
  }

  play() {
    if (this.playing || this.n < 2) return;
    if (this.t >= this.n - 1) this.show(0);
    this.playing = true;
    this.onplay(true);
    this.due = performance.now() + this.period();
    this.schedule(this.period());
  }

  period() { return 1000 / (this.hz * this.speed); }

  pause() {
    this.playing = false;
    clearTimeout(this.timer);
    this.timer = null;
    $("#buffering").textContent = "";
    this.onplay(false);
  }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
  }

  tick() {
    if (!this.playing || !this.alive) return;
    const next = this.t + 1;
    if (next >= this.n) { this.pause(); return; }
    if (!this.ready(next)) {
      $("#buffering").textContent = "buffering…";
      this.want(this.t);
      this.schedule(15);
      return;
    }
    $("#buffering").textContent = "";
    this.show(next);
    // steps are due at a fixed rate; after a stall (buffering) the clock restarts instead of rushing
    const now = performance.now();
    this.due += this.period();
    if (this.due < now) this.due = now + this.period();
    this.schedule(this.due - now);
  }

  destroy() {
    this.pause();
    this.alive = false;
    this.cache.clear();
    this.queue = [];
  }
}

// ---- plots ------------------------------------------------------------------------------------------------
function buildPlots(ep, seek) {
  const box = $("#plots");
  box.replaceChildren();
  const cursors = [];
  const low = ep.lowdim;
  if (!low || !low.t.length) return () => {};
  const groups = [["Actions", low.action, low.action_space], ["State", low.state, null]];
  for (const [title, fields, first] of groups) {
    box.append(el("h3", { text: title }));
    const names = Object.keys(fields).sort((a, b) => (b === first) - (a === first));
    for (const name of names) {
      const { plot, cursor } = linePlot(name + (name === first ? " (commanded)" : ""), low.t, fields[name], ep.num_steps, seek);
      box.append(plot);
      cursors.push(cursor);
    }
  }
  return (t) => {
    const x = ep.num_steps > 1 ? (t / (ep.num_steps - 1)) * PLOT_W : 0;
    for (const c of cursors) { c.setAttribute("x1", x); c.setAttribute("x2", x); }
  };
}

function linePlot(name, ts, rows, n, seek) {
  const dims = rows.length ? rows[0].length : 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of rows) for (const v of r) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(lo)) { lo = -1; hi = 1; }
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.05;
  lo -= pad; hi += pad;
  const x = (t) => (n > 1 ? (t / (n - 1)) * PLOT_W : 0);
  const y = (v) => PLOT_H - ((v - lo) / (hi - lo)) * PLOT_H;
  const s = svg("svg", { viewBox: `0 0 ${PLOT_W} ${PLOT_H}`, preserveAspectRatio: "none", class: "plot-svg" });
  if (lo < 0 && hi > 0) s.append(svg("line", { x1: 0, x2: PLOT_W, y1: y(0), y2: y(0), class: "zero" }));
  const legend = el("span", { class: "legend" });
  for (let d = 0; d < dims; d++) {
    const color = COLORS[d % COLORS.length];
    let pts = [];
    const flush = () => {
      if (pts.length) s.append(svg("polyline", { points: pts.join(" "), stroke: color, class: "series" }));
      pts = [];
    };
    for (let i = 0; i < ts.length; i++) {
      const v = rows[i][d];
      if (v === null) flush(); else pts.push(`${x(ts[i]).toFixed(1)},${y(v).toFixed(2)}`);
    }
    flush();
    if (dims > 1) {
      const sw = el("span", { class: "swatch", title: `dim ${d}` });
      sw.style.background = color; // CSSOM, not a style attribute: allowed by the page's CSP
      legend.append(sw);
    }
  }
  const cursor = svg("line", { x1: 0, x2: 0, y1: 0, y2: PLOT_H, class: "cursor" });
  s.append(cursor);
  s.addEventListener("click", (ev) => {
    const r = s.getBoundingClientRect();
    seek(Math.round(((ev.clientX - r.left) / r.width) * (n - 1)));
  });
  const fmt = (v) => (Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : v.toFixed(2));
  const plot = el("div", { class: "plot", dataset: { field: name } }, [
    el("div", { class: "plot-title" }, [el("span", { class: "mono", text: `${name} [${dims}]` }), legend]),
    el("div", { class: "plot-body" }, [
      el("span", { class: "ymax", text: fmt(hi) }), s, el("span", { class: "ymin", text: fmt(lo) }),
    ]),
  ]);
  return { plot, cursor };
}

// ---- episode view -----------------------------------------------------------------------------------------
const view = { player: null, ep: null, seq: 0, moveCursor: () => {} };

async function openEpisode(path) {
  const seq = ++view.seq;
  closeEpisode();
  $("#list-view").hidden = true;
  $("#episode-view").hidden = false;
  $("#ep-title").textContent = path;
  $("#ep-error").textContent = "";
  $("#ep-label").textContent = "";
  $("#cameras").replaceChildren();
  $("#plots").replaceChildren();
  let ep;
  try {
    ep = await api(`/api/episode/${encodePath(path)}`);
  } catch (e) {
    if (seq === view.seq) $("#ep-error").textContent = e.message;
    return;
  }
  if (seq !== view.seq) return;
  view.ep = ep;
  const views = ep.cameras.map((c, i) => {
    const img = el("img", { class: "cam", id: `cam-${i}`, alt: c.name, width: c.width, height: c.height,
      dataset: { camera: c.name } });
    $("#cameras").append(el("figure", {}, [img, el("figcaption", { text: `${c.name} · ${c.encoding} ${c.width}×${c.height}` + (c.dropped ? ` · ${c.dropped} dropped` : "") })]));
    return { cam: c.name, img };
  });
  const player = new Player(ep, views);
  view.player = player;
  const slider = $("#slider");
  slider.max = Math.max(0, ep.num_steps - 1);
  view.moveCursor = buildPlots(ep, (t) => player.seek(t));
  player.onstep = (t) => {
    slider.value = t;
    $("#step").textContent = `${t} / ${ep.num_steps - 1}`;
    $("#step").dataset.step = t;
    view.moveCursor(t);
  };
  player.onplay = (on) => {
    $("#play").textContent = on ? "❚❚ pause" : "▶ play";
    $("#play").dataset.playing = on ? "1" : "0";
  };
  player.speed = Number($("#speed").value) || 1;
  renderLabels(ep);
  player.show(0);
}

function closeEpisode() {
  if (view.player) view.player.destroy();
  view.player = null;
  view.ep = null;
}

function renderLabels(ep) {
  const word = successWord(ep.metadata.success);
  const label = $("#ep-label");
  label.textContent = `${word} · ${ep.instructions.join(" | ")}`;
  label.className = `label ${word}`;
  label.dataset.success = word;
  $("#relabel-success").value = word;
  $("#relabel-language").value = ep.instructions.join("\n");
  const hist = ep.label_history || [];
  $("#label-history").replaceChildren(...(hist.length ? hist.map((h) => el("li", {
    text: `${h.time} ${h.who}: ${h.field} ${JSON.stringify(h.old)} → ${JSON.stringify(h.new)}`,
  })) : [el("li", { class: "muted", text: "no relabels yet" })]));
  const m = ep.metadata;
  const rows = [
    ["path", ep.path], ["uuid", ep.uuid], ["steps", `${ep.num_steps} (${(ep.duration_s || 0).toFixed(2)} s at ${m.control_hz} Hz)`],
    ...Object.entries(m).map(([k, v]) => [k, k === "success" ? `${v} (${successWord(v)})` : String(v)]),
    ["language", (ep.language || []).join(" | ")],
    ["cameras", ep.cameras.map((c) => `${c.name} ${c.width}×${c.height} ${c.encoding}, ${c.frames} frames, ${c.dropped} dropped`).join("; ")],
    ["file size", `${(ep.file_bytes / 1048576).toFixed(2)} MiB`],
  ];
  $("#meta tbody").replaceChildren(...rows.map(([k, v]) => el("tr", {}, [el("th", { text: k }), el("td", { text: v })])));
}

async function saveRelabel() {
  const ep = view.ep;
  if (!ep) return;
  const status = $("#relabel-status");
  const success = { success: true, failure: false, unknown: null }[$("#relabel-success").value];
  const body = { success, language: $("#relabel-language").value };
  const who = $("#relabel-who").value.trim();
  if (who) { body.who = who; localStorage.setItem("robolearn.who", who); }
  status.textContent = "saving…";
  status.className = "";
  $("#relabel-save").disabled = true;
  try {
    const res = await api(`/api/relabel/${encodePath(ep.path)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Robolearn-Token": TOKEN },
      body: JSON.stringify(body),
    });
    if (view.ep !== ep) return;
    Object.assign(ep, res.episode);
    renderLabels(ep);
    status.textContent = res.changes.length
      ? `saved: ${res.changes.map((c) => `${c.field} ${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`).join("; ")}`
      : "no change";
    status.className = "ok";
    status.dataset.saved = String(Date.now());
    loadEpisodes();
  } catch (e) {
    status.textContent = `not saved: ${e.message}`;
    status.className = "error";
  } finally {
    $("#relabel-save").disabled = false;
  }
}

function setupEpisodeView() {
  $("#back").addEventListener("click", () => { location.hash = "#/"; });
  $("#play").addEventListener("click", () => view.player && view.player.toggle());
  $("#step-back").addEventListener("click", () => view.player && (view.player.pause(), view.player.seek(view.player.t - 1)));
  $("#step-fwd").addEventListener("click", () => view.player && (view.player.pause(), view.player.seek(view.player.t + 1)));
  $("#slider").addEventListener("input", (ev) => view.player && view.player.seek(Number(ev.target.value)));
  $("#speed").addEventListener("change", (ev) => { if (view.player) view.player.speed = Number(ev.target.value) || 1; });
  $("#relabel-save").addEventListener("click", saveRelabel);
  $("#relabel").addEventListener("submit", (ev) => { ev.preventDefault(); saveRelabel(); });
  $("#relabel-who").value = localStorage.getItem("robolearn.who") || "";
  document.addEventListener("keydown", (ev) => {
    if ($("#episode-view").hidden || !view.player || ev.target.closest("input, textarea, select, button")) return;
    if (ev.key === " ") { ev.preventDefault(); view.player.toggle(); }
    else if (ev.key === "ArrowRight") view.player.seek(view.player.t + 1);
    else if (ev.key === "ArrowLeft") view.player.seek(view.player.t - 1);
  });
}

// ---- routing ----------------------------------------------------------------------------------------------
function route() {
  const h = location.hash;
  if (h.startsWith("#/episode/")) {
    const path = h.slice("#/episode/".length).split("/").map(decodeURIComponent).join("/");
    openEpisode(path);
  } else {
    ++view.seq;
    closeEpisode();
    $("#episode-view").hidden = true;
    $("#list-view").hidden = false;
  }
}

window.addEventListener("DOMContentLoaded", () => {
  setupFilters();
  setupEpisodeView();
  window.addEventListener("hashchange", route);
  loadEpisodes();
  route();
});
