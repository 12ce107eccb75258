// The augur dashboard: one EventSource, a snapshot then deltas (see
// src/dashboard/frames.ts for the frame format). Plain JavaScript served as a
// file (see src/dashboard/attach.ts for why). uPlot is loaded as a global by
// index.html. With hundreds of endpoints, only the cards on screen have a
// plot (IntersectionObserver); every change is drawn once per animation frame.

/* global uPlot */

const $ = (sel) => document.querySelector(sel);
const servicesEl = $('#services');
const filterEl = $('#filter');
const SWAP_ROWS = 100;
const STRIP_SECONDS = 600;
const STRIP_DOTS = 300;
const PLOTS_PER_FRAME = 4;

const state = {
  /** serverNow - Date.now(), ms: staleness is computed on the server's clock. */
  offset: 0,
  plotSamples: 150,
  rules: { watchIntervals: 0, overloadUtilization: 0.9, responseTimeSlo: 0, text: '' },
  services: new Map(),
  endpoints: new Map(),
  swaps: new Map(),
  swapsDirty: true,
  stripDirty: true,
  filter: '',
};

// Exposed for tests and for curious operators (devtools).
const stats = {
  snapshots: 0,
  deltas: 0,
  bytes: 0,
  lastFrameAt: 0,
  renders: 0,
  plotsCreated: 0,
  longTasks: 0,
  longestTaskMs: 0,
  /** Main-thread time spent applying frames and drawing them, ms. */
  applyMs: 0,
  renderMs: 0,
  maxRenderMs: 0,
};
window.augurDashboard = {
  stats,
  state,
  livePlots: () => [...state.endpoints.values()].filter((e) => e.plot).length,
};

try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      stats.longTasks++;
      stats.longestTaskMs = Math.max(stats.longestTaskMs, entry.duration);
    }
  }).observe({ type: 'longtask', buffered: true });
} catch {
  // Browsers without long-task timing: the figures stay 0.
}

// ---------------------------------------------------------------- formatting

// Utilisations and shares are fractions in [0,1]; shown clipped so no screen reads 118 %.
const pct = (x) => (x == null ? '–' : `${(Math.min(1, Math.max(0, x)) * 100).toFixed(1)} %`);
const num = (x, d) => (x == null ? '–' : x.toFixed(d));
// Formatted by hand: toLocaleTimeString builds a formatter per call, which cost
// seconds per minute of main thread with hundreds of swaps on the page.
const two = (n) => (n < 10 ? `0${n}` : `${n}`);
const clock = (ms) => {
  const d = new Date(ms);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
};
const serverNow = () => Date.now() + state.offset;
function staleness(seen) {
  if (!seen) return '–';
  const s = Math.max(0, (serverNow() - seen) / 1000);
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

// ---------------------------------------------------------------- services and cards

function serviceSection(name) {
  let svc = state.services.get(name);
  if (svc?.el) return svc;
  svc = svc ?? { name, version: 0, at: 0 };
  const el = document.createElement('section');
  el.dataset.service = name;
  el.innerHTML = `<h2><span class="name"></span> <small class="meta"></small></h2><div class="grid"></div>`;
  el.querySelector('.name').textContent = name || '(no service)';
  svc.el = el;
  svc.grid = el.querySelector('.grid');
  svc.meta = el.querySelector('.meta');
  // Keep sections sorted by name.
  const after = [...servicesEl.children].find((s) => s.dataset.service > name);
  servicesEl.insertBefore(el, after ?? null);
  state.services.set(name, svc);
  return svc;
}

const CARD_HTML = `
  <div class="head"><span class="rank"></span><span class="id"></span><span class="state"></span></div>
  <div>score <b data-field="score"></b> · weight <b data-field="weight"></b>
    <span class="wbar"><i></i></span></div>
  <div class="muted">stale <span data-field="staleness"></span> · <span data-field="fc"></span>
    MASE <span data-field="mase"></span> · predicted <span data-field="pu"></span></div>
  <div class="why" data-field="why"></div>
  <div class="plot" data-points="0" data-forecast="no"></div>`;

// Cloned for each endpoint: much cheaper than parsing HTML 500 times.
const CARD_TEMPLATE = document.createElement('template');
CARD_TEMPLATE.innerHTML = `<div class="card">${CARD_HTML}</div>`;

const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      const ep = state.endpoints.get(entry.target.dataset.endpoint);
      if (!ep) continue;
      ep.visible = entry.isIntersecting;
      if (ep.visible) {
        ep.dirty = true;
        scheduleRender();
      } else if (ep.plot) {
        ep.plot.destroy();
        ep.plot = null;
      }
    }
  },
  { rootMargin: '300px 0px' },
);

function newEndpoint(id) {
  const card = /** @type {HTMLElement} */ (CARD_TEMPLATE.content.firstElementChild.cloneNode(true));
  card.dataset.endpoint = id;
  card.querySelector('.id').textContent = id;
  card.title = id;
  const field = (name) => card.querySelector(`[data-field="${name}"]`);
  const ep = {
    id,
    svc: undefined,
    t: [],
    cpu: [],
    f: null,
    card,
    els: {
      rank: card.querySelector('.rank'),
      state: card.querySelector('.state'),
      score: field('score'),
      weight: field('weight'),
      wbar: card.querySelector('.wbar i'),
      staleness: field('staleness'),
      fc: field('fc'),
      mase: field('mase'),
      pu: field('pu'),
      why: field('why'),
      plot: card.querySelector('.plot'),
    },
    plot: null,
    visible: false,
    dirty: true,
  };
  state.endpoints.set(id, ep);
  return ep;
}

/** Puts the card in its service's grid, in id order. */
function place(ep) {
  const svc = serviceSection(ep.svc ?? '');
  const after = [...svc.grid.children].find((c) => c.dataset.endpoint > ep.id);
  svc.grid.insertBefore(ep.card, after ?? null);
  applyFilter(ep);
  observer.observe(ep.card);
}

function removeEndpoint(id) {
  const ep = state.endpoints.get(id);
  if (!ep) return;
  observer.unobserve(ep.card);
  ep.plot?.destroy();
  ep.card.remove();
  state.endpoints.delete(id);
}

function applyFilter(ep) {
  const f = state.filter;
  ep.card.hidden =
    f !== '' && !ep.id.toLowerCase().includes(f) && !(ep.svc ?? '').toLowerCase().includes(f);
}

// ---------------------------------------------------------------- frames

const ROW_KEYS = [
  'svc',
  'addr',
  'state',
  'score',
  'weight',
  'rank',
  'pu',
  'fc',
  'mase',
  'rt',
  'seen',
  'why',
];

function applyEndpoint(frame, fresh) {
  let ep = state.endpoints.get(frame.id);
  const isNew = !ep;
  if (!ep) ep = newEndpoint(frame.id);
  const oldSvc = ep.svc;
  for (const k of ROW_KEYS) if (k in frame) ep[k] = frame[k];
  if (frame.s) {
    const [ts, cpu] = frame.s;
    if (fresh) {
      ep.t = ts.slice();
      ep.cpu = cpu.slice();
    } else {
      const last = ep.t.length ? ep.t[ep.t.length - 1] : -Infinity;
      for (let i = 0; i < ts.length; i++)
        if (ts[i] > last) {
          ep.t.push(ts[i]);
          ep.cpu.push(cpu[i]);
        }
      const extra = ep.t.length - state.plotSamples;
      if (extra > 0) {
        ep.t.splice(0, extra);
        ep.cpu.splice(0, extra);
      }
    }
  }
  if ('f' in frame) ep.f = frame.f;
  if (isNew || oldSvc !== ep.svc) place(ep);
  ep.dirty = true;
}

function onSnapshot(frame) {
  stats.snapshots++;
  state.offset = frame.now - Date.now();
  state.plotSamples = frame.plotSamples ?? state.plotSamples;
  state.rules = frame.swapRules;
  const present = new Set(frame.endpoints.map((e) => e.id));
  for (const id of [...state.endpoints.keys()]) if (!present.has(id)) removeEndpoint(id);
  for (const s of frame.services) Object.assign(serviceSection(s.name), s);
  for (const e of frame.endpoints) applyEndpoint(e, true);
  state.swaps.clear();
  for (const s of frame.swaps) state.swaps.set(s.id, s);
  state.swapsDirty = true;
  scheduleRender();
}

function onDelta(frame) {
  stats.deltas++;
  state.offset = frame.now - Date.now();
  for (const s of frame.services ?? []) Object.assign(serviceSection(s.name), s);
  for (const e of frame.endpoints ?? []) applyEndpoint(e, false);
  for (const id of frame.removed ?? []) removeEndpoint(id);
  for (const s of frame.swaps ?? []) {
    state.swaps.set(s.id, s);
    const ep = state.endpoints.get(s.endpointId);
    if (ep) ep.dirty = true;
  }
  if (frame.swaps) {
    const ids = [...state.swaps.keys()].sort((a, b) => a - b);
    for (const id of ids.slice(0, Math.max(0, ids.length - 1000))) state.swaps.delete(id);
    state.swapsDirty = true;
  }
  scheduleRender();
}

// ---------------------------------------------------------------- rendering

let renderScheduled = false;
function scheduleRender() {
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(render);
}

function render() {
  const t = performance.now();
  renderScheduled = false;
  stats.renders++;
  // Only cards on (or near) the screen are drawn; the others stay dirty until
  // the IntersectionObserver brings them in. New plots are made a few per
  // frame, so a jump across hundreds of cards never blocks input.
  let created = 0;
  let more = false;
  for (const ep of state.endpoints.values()) {
    if (!ep.dirty || !ep.visible || ep.card.hidden) continue;
    if (!ep.plot && created >= PLOTS_PER_FRAME) {
      more = true;
      continue;
    }
    ep.dirty = false;
    renderCard(ep);
    if (!ep.plot) created++;
    renderPlot(ep);
  }
  for (const svc of state.services.values()) {
    if (!svc.meta) continue;
    const n = svc.grid.children.length;
    svc.meta.textContent = `${n} endpoint${n === 1 ? '' : 's'} · list v${svc.version}${svc.at ? ` at ${clock(svc.at)}` : ''}`;
  }
  if (state.swapsDirty) renderSwaps();
  if (state.stripDirty) renderStrip();
  $('#summary').textContent =
    `${state.services.size} services · ${state.endpoints.size} endpoints · ${state.swaps.size} swaps · updated ${clock(serverNow())}`;
  const took = performance.now() - t;
  stats.renderMs += took;
  stats.maxRenderMs = Math.max(stats.maxRenderMs, took);
  if (more) scheduleRender();
}

function renderCard(ep) {
  const e = ep.els;
  ep.card.dataset.state = ep.state ?? 'unknown';
  e.rank.textContent = ep.rank ? `#${ep.rank}` : '';
  e.state.textContent = ep.state ?? '';
  e.score.textContent = num(ep.score, 3);
  e.weight.textContent = pct(ep.weight);
  e.wbar.style.width = `${Math.round((ep.weight ?? 0) * 100)}%`;
  e.staleness.textContent = staleness(ep.seen);
  e.fc.textContent = ep.fc || '–';
  e.mase.textContent = num(ep.mase, 2);
  e.pu.textContent = pct(ep.pu);
  e.why.textContent = ep.why ?? '';
  e.plot.dataset.points = String(ep.t.length);
  e.plot.dataset.forecast = ep.f ? 'yes' : 'no';
  e.plot.title = ep.f ? '' : 'no forecast for this endpoint yet: measured load only';
}

/** Rows of [x seconds, actual, median, upper], sorted by x, as uPlot columns. */
function plotData(ep) {
  const rows = [];
  for (let i = 0; i < ep.t.length; i++) rows.push([ep.t[i] / 1000, ep.cpu[i], null, null]);
  const f = ep.f;
  if (f && ep.t.length) {
    // Join the forecast to the measured value it continues from.
    let j = ep.t.length - 1;
    while (j > 0 && ep.t[j] > f.t0) j--;
    rows.push([f.t0 / 1000 + 1e-6, null, ep.cpu[j], ep.cpu[j]]);
    for (let h = 0; h < f.med.length; h++)
      rows.push([(f.t0 + (h + 1) * f.dt) / 1000, null, f.med[h], f.up[h]]);
    rows.sort((a, b) => a[0] - b[0]);
  }
  return [0, 1, 2, 3].map((c) => rows.map((r) => r[c]));
}

function drawMarks(u, ep) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  const yLimit = u.valToPos(state.rules.overloadUtilization, 'y', true);
  ctx.strokeStyle = 'rgba(185,28,28,0.35)';
  ctx.setLineDash([2, 3]);
  ctx.beginPath();
  ctx.moveTo(left, yLimit);
  ctx.lineTo(left + width, yLimit);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = '#b91c1c';
  ctx.lineWidth = 2;
  for (const s of state.swaps.values()) {
    if (s.endpointId !== ep.id) continue;
    const x = u.valToPos(s.atMs / 1000, 'x', true);
    if (x < left || x > left + width) continue;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
  }
  ctx.restore();
}

function renderPlot(ep) {
  const data = plotData(ep);
  if (ep.plot) {
    ep.plot.setData(data);
    return;
  }
  const el = ep.els.plot;
  const width = Math.max(120, el.clientWidth);
  ep.plot = new uPlot(
    {
      width,
      height: 100,
      legend: { show: false },
      cursor: { show: false },
      scales: { y: { range: [0, 1] } },
      axes: [
        { size: 20, font: '10px system-ui', ticks: { size: 3 } },
        {
          size: 48,
          font: '10px system-ui',
          splits: () => [0, 0.5, 1],
          values: (_u, v) => v.map((x) => `${Math.round(x * 100)}%`),
        },
      ],
      series: [
        {},
        { label: 'cpu', stroke: '#1d2330', width: 1.5, spanGaps: true },
        { label: 'forecast', stroke: '#2563eb', width: 1.5, dash: [5, 3], spanGaps: true },
        { label: 'upper', stroke: '#60a5fa', width: 1, dash: [2, 2], spanGaps: true },
      ],
      // The band between the median and the upper bound: where the load may go.
      bands: [{ series: [3, 2], fill: 'rgba(37,99,235,0.12)' }],
      hooks: { draw: [(u) => drawMarks(u, ep)] },
    },
    data,
    el,
  );
  stats.plotsCreated++;
}

/** The verdict comes from the server (src/lps/swaps.ts), with the figures it rests on. */
function swapText(s) {
  return { outcome: s.verdict || s.outcome };
}

function renderSwaps() {
  state.swapsDirty = false;
  const swaps = [...state.swaps.values()].sort((a, b) => b.atMs - a.atMs);
  $('#swap-empty').hidden = swaps.length > 0;
  $('#swap-rules').textContent = state.rules.text;
  const list = $('#swap-list');
  const frag = document.createDocumentFragment();
  for (const s of swaps.slice(0, SWAP_ROWS)) {
    const li = document.createElement('li');
    li.dataset.swapId = String(s.id);
    li.dataset.endpoint = s.endpointId;
    li.dataset.outcome = s.outcome;
    li.dataset.at = String(s.atMs);
    const { outcome } = swapText(s);
    // Only numbers are interpolated; names go in with textContent.
    li.innerHTML =
      `<b class="when"></b> <span class="who"></span> share ${pct(s.weightBefore)} → ${pct(s.weightAfter)}` +
      ` · score ${num(s.scoreBefore, 3)} → ${num(s.score, 3)} · forecast at the cut ${pct(s.predictedUtilization)}` +
      ` (measured ${pct(s.utilizationAtCut)}, <span class="fc"></span>) · <span class="outcome"></span>` +
      (s.overloadedAtCut
        ? ' <span class="tag" title="already overloaded when cut">reactive</span>'
        : '');
    li.querySelector('.when').textContent = clock(s.atMs);
    li.querySelector('.who').textContent = `${s.service}/${s.endpointId}`;
    li.querySelector('.fc').textContent = s.forecaster || '?';
    li.querySelector('.outcome').textContent = outcome;
    frag.append(li);
  }
  list.replaceChildren(frag);
  state.stripDirty = true;
}

/** The dots of the last STRIP_SECONDS; redrawn each second as they slide left. */
function renderStrip() {
  state.stripDirty = false;
  const now = serverNow();
  const dots = document.createDocumentFragment();
  let n = 0;
  for (const s of state.swaps.values()) {
    const age = (now - s.atMs) / 1000;
    if (age > STRIP_SECONDS || n >= STRIP_DOTS) continue;
    n++;
    const dot = document.createElement('i');
    dot.dataset.outcome = s.outcome;
    dot.style.left = `${100 - (Math.max(0, age) / STRIP_SECONDS) * 100}%`;
    dot.title = `${clock(s.atMs)} ${s.endpointId}: ${swapText(s).outcome}`;
    dots.append(dot);
  }
  $('#swap-strip').replaceChildren(dots);
}

// Staleness keeps moving between frames: refresh the cards on screen.
setInterval(() => {
  for (const ep of state.endpoints.values())
    if (ep.visible) ep.els.staleness.textContent = staleness(ep.seen);
  state.stripDirty = true;
  scheduleRender();
}, 1000);

filterEl.addEventListener('input', () => {
  state.filter = filterEl.value.trim().toLowerCase();
  for (const ep of state.endpoints.values()) applyFilter(ep);
});

// ---------------------------------------------------------------- connection

function connect() {
  const conn = $('#conn');
  const source = new EventSource('/dashboard/events');
  source.addEventListener('open', () => {
    conn.dataset.conn = 'live';
    conn.textContent = 'live';
  });
  source.addEventListener('error', () => {
    conn.dataset.conn = 'reconnecting';
    conn.textContent = 'reconnecting…';
  });
  for (const [name, handler] of [
    ['snapshot', onSnapshot],
    ['delta', onDelta],
  ]) {
    source.addEventListener(name, (ev) => {
      const t = performance.now();
      stats.bytes += ev.data.length;
      stats.lastFrameAt = Date.now();
      handler(JSON.parse(ev.data));
      stats.applyMs += performance.now() - t;
    });
  }
}

connect();
