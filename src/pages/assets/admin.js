// admin.js: the clinic dashboard at /admin (page admin.html), admins only. What it shows, and from where:
// - headline tiles: the `analytics` channel over LiveSocket (snapshot `today`, then `analytics_today` events);
// - today's boards: GET /api/providers, then per doctor one `board` command on the same socket for today in the
//   doctor's zone (a one-off read of the board's snapshot; nothing stays subscribed), paced at 10 commands a
//   second, recounted when today's figures change and every minute but at most every 30 s; each links to /board/<id>;
// - SVG charts: GET /api/analytics/appointments?groupBy=day, the last 14 clinic days (booked, noShows, cancelled
//   summed over the doctors' rows; days without rows are zeros; today follows the live figures), and the
//   `receivable` aging of GET /api/analytics/billing, whose `asOf` also says what the clinic's today is;
// - delivery failures: GET /api/analytics/notifications (same days, per channel) and GET /metrics (Prometheus
//   text, read with the admin's token every 30 s), which gives the operations tiles too.
// Anyone signed in who is not an admin sees "admins only" and the page asks nothing more; a 403 says the same.
// CSP: a module from /pages/, no inline script or style; DOM built with el()/svg() (text only as text).

import { addDays, api, clearSession, describe, el, loadSession, login, logout, pacer, refresh, setBanner, showStatus,
  svg, todayIn, LiveSocket } from './common.js';

const DAYS = 14;
const BOARDS_COUNTED = 100; // doctors whose boards are counted (the rest are listed with their links only)
const BOARDS_EVERY_MS = 30000; // the boards are counted again at most this often (the headline tiles are live)
const BOARDS_GAP_MS = 100; // between two `board` commands: 10 a second, half what the server allows by default
const SERIES = [ // the chart's series: data-series, the report's field, legend words, colour class
  { key: 'booked', field: 'booked', label: 'Booked', cls: 'series-1' },
  { key: 'no_show', field: 'noShows', label: 'No-shows', cls: 'series-4' },
  { key: 'cancelled', field: 'cancelled', label: 'Cancelled', cls: 'series-2' },
];
const AGING = ['0-30', '31-60', '61-90', '91-120', 'over-120'];
const CHANNELS = { email: 'E-mail', sms: 'SMS', push: 'Push', in_app: 'In-app' };
const NOTE_FIGURES = ['notifications', 'failed', 'expired', 'failedAttempts'];

const ui = Object.fromEntries([...document.querySelectorAll('[id]')].map((node) => [node.id, node])); // by id

let run = null; // the dashboard while it runs: its socket, timers and what it read; a new one per start
const problems = new Map(); // source -> error; the banner says the latest
const DENIED = ui['denied-text'].textContent;

// ---- small helpers ----
const r1 = (v) => Math.round(v * 10) / 10;
const count = new Intl.NumberFormat();
const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const amount = (v) => Number(v) || 0; // Money arrives as a JSON number with two decimals
const dateFormat = (options) => new Intl.DateTimeFormat(undefined, { ...options, timeZone: 'UTC' });
const [dayShort, weekday] = [dateFormat({ day: 'numeric', month: 'short' }), dateFormat({ weekday: 'short' })];
const dayLong = dateFormat({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const atNoon = (day) => Date.parse(`${day}T12:00:00Z`); // a civil date, formatted where no zone moves it

const shown = (visible, ...nodes) => nodes.forEach((n) => n.classList.toggle('hidden', !visible));
function clearProblems() { problems.clear(); setBanner(ui.banner, null); }

/** Says in the banner what failed (`source`: in words), or that it works again (`error` null). */
function problem(source, error) {
  problems.delete(source);
  if (error != null) problems.set(source, error);
  const last = [...problems.entries()].pop();
  setBanner(ui.banner, last ? `${last[0]} could not be loaded: ${describe(last[1])}` : null);
}

/** Runs a request of run `r`: its answer, or null once the error is handled (403: admins only; 401: sign in). */
async function guard(r, source, request) {
  try {
    const answer = await request();
    if (r === run) problem(source, null);
    return r === run ? answer : null;
  } catch (err) {
    if (r === run && err?.code === 'forbidden') deny(err);
    else if (r === run && err?.code === 'unauthorized') signedOut();
    else if (r === run) problem(source, err);
    return null;
  }
}

// ---- signing in and out ----
function showLogin(message) {
  stop();
  shown(false, ui.dashboard, ui.denied, ui.logout, ui.refresh);
  shown(true, ui['login-area']);
  ui.who.textContent = '';
  setBanner(ui['login-error'], message || null);
  ui['login-username'].focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const [username, password] = [ui['login-username'].value.trim(), ui['login-password'].value];
  if (!username || !password) return setBanner(ui['login-error'], 'Please enter your username and password.');
  ui['login-submit'].disabled = true;
  setBanner(ui['login-error'], null);
  try {
    const session = await login(username, password);
    ui['login-password'].value = '';
    enter(session);
  } catch (err) { setBanner(ui['login-error'], err); } finally { ui['login-submit'].disabled = false; }
}

/** With a session: an admin gets the dashboard; anyone else "admins only", and no request at all. */
function enter(session) {
  const user = session.user || {};
  shown(false, ui['login-area']);
  shown(true, ui.logout);
  ui.who.textContent = `Signed in as ${user.username || user.userId || 'an unknown account'}`
    + `${user.role ? ` (${user.role})` : ''}`;
  if (user.role && user.role !== 'admin') return deny(null);
  start();
}

function deny(err) {
  stop();
  clearProblems();
  if (err) setBanner(ui.banner, `The server refused the clinic's figures to this account: ${describe(err)}`);
  ui['denied-text'].textContent = err ? 'This dashboard is for clinic administrators only, and the server '
    + 'refused its figures to the account you are signed in with.' : DENIED;
  shown(false, ui.dashboard, ui.refresh);
  shown(true, ui.denied);
}

function signedOut() {
  clearSession();
  clearProblems();
  showLogin('Your sign-in has ended. Please sign in again.');
}

function stop() {
  const r = run;
  if (!r) return;
  run = null;
  r.timers.forEach((t) => clearInterval(t));
  clearTimeout(r.boards.timer);
  r.socket.close();
  setStatus('closed');
}

function setStatus(status) {
  showStatus(ui.status, status);
}

// ---- the dashboard ----
function start() {
  stop();
  const r = (run = { timers: [], range: null, series: null, headline: null, notes: null, metrics: null,
    doctors: [], boards: { busy: false, at: 0, owed: false, timer: null, pace: pacer(BOARDS_GAP_MS) } });
  clearProblems();
  shown(false, ui.denied);
  shown(true, ui.dashboard, ui.refresh);
  r.socket = new LiveSocket({
    token: () => loadSession()?.accessToken,
    renew: async () => (await refresh()).accessToken,
    onStatus: (status) => {
      if (r !== run) return;
      setStatus(status);
      ui.headline.classList.toggle('stale', status !== 'live'); // the figures may be behind
      if (status === 'closed-unauthorized') signedOut();
      else if (status === 'live' && r.boards.owed) countBoards(r);
    },
    onSnapshot: (_channel, snapshot) => { if (r === run && snapshot) showHeadline(r, snapshot.today); },
    onEvent: (_channel, _seq, e) => { if (r === run && e.kind === 'analytics_today') showHeadline(r, e); },
    onError: (err, { channel } = {}) => {
      if (r !== run || err.code === 'unauthorized') return; // the status says so
      if (err.code === 'forbidden' && channel === 'analytics') deny(err); else problem('Live figures', err);
    },
  });
  r.socket.subscribe('analytics'); // then start(): the subscription goes with the first connect
  r.socket.start();
  [loadReports, loadDoctors, loadMetrics].forEach((load) => load(r));
  r.timers.push(setInterval(() => { if (!document.hidden) loadMetrics(r); }, 30000),
    setInterval(() => { if (!document.hidden) countBoards(r); }, 60000));
}

function showHeadline(r, h) {
  if (!h || !h.day) return;
  const before = r.headline;
  r.headline = h;
  ui['today-day'].textContent = `· ${dayLong.format(atNoon(h.day))}`;
  for (const tile of ui.headline.querySelectorAll('[data-figure]')) {
    const value = Number(h[tile.getAttribute('data-figure')]) || 0;
    tile.setAttribute('data-value', String(value));
    tile.querySelector('.value').textContent = count.format(value);
  }
  if (r.range && h.day > r.range.to) { r.range = null; loadReports(r); return countBoards(r); } // a new day
  if (applyHeadline(r)) drawAppointments(r);
  if (before && (before.booked !== h.booked || before.cancelled !== h.cancelled)) scheduleBoards(r);
}

/** Today's column of the chart from the live figures (the report's sums, newer). True when it changed. */
function applyHeadline(r) {
  const { headline: h, series: s } = r;
  const today = s && h && h.day === s.days[s.days.length - 1] ? s.byDay.get(h.day) : null;
  if (!today) return false;
  const next = Object.fromEntries(SERIES.map((x) => [x.key, Number(h[x.field]) || 0])); // the same field names
  if (SERIES.every((x) => today[x.key] === next[x.key])) return false;
  Object.assign(today, next);
  return true;
}

async function loadReports(r) {
  // The billing report's `asOf` is the clinic's today, whatever the browser's zone; its range hardly matters.
  const local = todayIn();
  const billing = await guard(r, 'Accounts receivable',
    () => api('/api/analytics/billing', { query: { from: local, to: local } }));
  if (r !== run) return;
  if (billing) drawReceivable(billing.receivable || {});
  else ui['receivable-summary'].textContent = 'Accounts receivable could not be read.';
  const to = billing?.receivable?.asOf || local;
  const from = addDays(to, -(DAYS - 1));
  r.range = { from, to };
  const query = { from, to, groupBy: 'day' };
  const report = (name, words) => guard(r, words, () => api(`/api/analytics/${name}`, { query }));
  const [appointments, notes] = await Promise.all([report('appointments', 'The appointments chart'),
    report('notifications', 'Delivery figures')]);
  if (r !== run) return;
  if (appointments) {
    const days = [];
    for (let d = from; d <= to; d = addDays(d, 1)) days.push(d);
    const byDay = new Map(days.map((d) => [d, { booked: 0, no_show: 0, cancelled: 0 }]));
    for (const row of appointments.rows || []) {
      const bucket = byDay.get(row.period);
      if (bucket) for (const s of SERIES) bucket[s.key] += Number(row[s.field]) || 0;
    }
    r.series = { days, byDay, timeZone: appointments.timeZone || billing?.timeZone };
    applyHeadline(r);
    drawAppointments(r);
  } else if (!r.series) ui['chart-appointments-desc'].textContent = 'The appointments could not be read.';
  if (notes) {
    const zero = () => Object.fromEntries(NOTE_FIGURES.map((k) => [k, 0]));
    r.notes = new Map(Object.keys(CHANNELS).map((c) => [c, zero()]));
    for (const row of notes.rows || []) {
      const c = r.notes.get(row.channel) || r.notes.set(row.channel, zero()).get(row.channel);
      for (const k of NOTE_FIGURES) c[k] += Number(row[k]) || 0;
    }
  }
  drawDeliveries(r);
  ui.dashboard.setAttribute('aria-busy', 'false');
}

// ---- charts (plain SVG) ----
/** A scale from 0 in at most 5 round steps up to `max` or more (whole steps for counts). */
function scale(max, whole) {
  if (!(max > 0)) return { top: whole ? 4 : 100, step: whole ? 1 : 25 };
  const raw = max / 4, mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  if (whole) step = Math.max(1, Math.ceil(step));
  return { top: Math.ceil(max / step) * step, step };
}

/** Clears `node`, draws the grid, axes, y labels and legend; returns the plot's geometry. */
function frame(node, { width, height, left, bottom, max, whole, format, items }) {
  const plot = { x: left, y: 34, w: width - left - 10, h: height - 34 - bottom };
  const { top, step } = scale(max, whole);
  plot.yOf = (v) => plot.y + plot.h - (v / top) * plot.h;
  plot.base = plot.y + plot.h;
  const grid = svg('g', { class: 'grid' }), labels = [];
  for (let v = 0; v <= top + step / 2; v += step) {
    const y = r1(plot.yOf(v));
    grid.append(svg('line', { x1: plot.x, x2: plot.x + plot.w, y1: y, y2: y }));
    labels.push(svg('text', { x: plot.x - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, format(v)));
  }
  node.replaceChildren(grid, ...labels,
    svg('line', { class: 'axis', x1: plot.x, x2: plot.x, y1: plot.y, y2: plot.base }),
    svg('line', { class: 'axis', x1: plot.x, x2: plot.x + plot.w, y1: plot.base, y2: plot.base }));
  let at = plot.x;
  for (const { label, cls } of items) { // the legend, above the plot
    node.append(svg('rect', { class: ['legend-swatch', 'bar', cls], x: at, y: 8, width: 12, height: 12 }),
      svg('text', { x: at + 17, y: 18, class: 'legend-label' }, label));
    at += 30 + label.length * 7.5;
  }
  return plot;
}

const xLabel = (x, y, text, extra) => svg('text', { x, y, 'text-anchor': 'middle', class: ['tick', extra] }, text);

function drawAppointments(r) {
  const { days, byDay, timeZone } = r.series;
  const node = ui['chart-appointments'];
  const max = Math.max(0, ...days.flatMap((d) => SERIES.map((s) => byDay.get(d)[s.key])));
  const plot = frame(node, { width: 760, height: 300, left: 44, bottom: 44, max, whole: true, items: SERIES,
    format: (v) => count.format(v) });
  const group = plot.w / days.length, bar = (group * 0.8) / SERIES.length;
  const today = r.headline?.day || r.range?.to;
  const bars = svg('g', { class: 'bars' });
  days.forEach((day, i) => {
    const x0 = plot.x + i * group + group * 0.1, when = dayLong.format(atNoon(day));
    SERIES.forEach((s, k) => {
      const value = byDay.get(day)[s.key], y = plot.yOf(value);
      bars.append(svg('rect', { class: ['point', 'bar', s.cls], 'data-series': s.key, 'data-date': day,
        'data-value': String(value), x: r1(x0 + k * bar), y: r1(y), width: r1(bar), height: r1(plot.base - y) },
      svg('title', {}, `${when}: ${count.format(value)} ${s.label.toLowerCase()}`)));
    });
    const cx = r1(plot.x + (i + 0.5) * group);
    node.append(xLabel(cx, plot.base + 16, dayShort.format(atNoon(day))),
      xLabel(cx, plot.base + 31, day === today ? 'Today' : weekday.format(atNoon(day)), day === today && 'today'));
  });
  node.append(bars);
  const sums = SERIES.map((s) => `${count.format(days.reduce((n, d) => n + byDay.get(d)[s.key], 0))} `
    + s.label.toLowerCase());
  ui['chart-appointments-desc'].textContent = `${days[0]} to ${days[days.length - 1]} (the clinic's days`
    + `${timeZone ? `, ${timeZone}` : ''}), all doctors: ${sums.join(', ')}. Booked counts every appointment `
    + 'on its day, whatever became of it; today follows the live figures.';
}

function drawReceivable(receivable) {
  const node = ui['chart-receivable'];
  const aging = [...(receivable.aging || [])];
  AGING.filter((days) => !aging.some((a) => a.days === days)).forEach((days) => aging.push({ days, total: 0 }));
  const max = Math.max(0, ...aging.map((a) => amount(a.total)));
  const plot = frame(node, { width: 760, height: 280, left: 78, bottom: 30, max, whole: false,
    format: (v) => money.format(v),
    items: [{ label: 'Owed by patients', cls: 'series-1' }, { label: 'Owed by insurers', cls: 'series-3' }] });
  const group = plot.w / aging.length, bar = group * 0.56;
  const bars = svg('g', { class: 'bars' });
  aging.forEach((a, i) => {
    const total = amount(a.total), x = r1(plot.x + i * group + (group - bar) / 2), cx = r1(x + bar / 2);
    const [y, yp] = [plot.yOf(total), plot.yOf(Math.min(amount(a.patients), total))];
    const words = `${a.days} days: ${money.format(total)} owed (patients ${money.format(amount(a.patients))}, `
      + `insurers ${money.format(amount(a.insurers))})`;
    // The point is the whole bar (the total, in the insurers' colour); the patients' share covers its foot.
    const rect = (attrs, top) => svg('rect', { ...attrs, x, y: r1(top), width: r1(bar), height: r1(plot.base - top) },
      svg('title', {}, words));
    bars.append(rect({ class: ['point', 'bar', 'series-3'], 'data-bucket': a.days, 'data-value': total.toFixed(2) }, y),
      rect({ class: ['bar', 'series-1', 'share'] }, yp),
    svg('text', { x: cx, y: r1(y - 6), 'text-anchor': 'middle', class: 'value-label' }, money.format(total)),
    xLabel(cx, plot.base + 18, a.days === 'over-120' ? 'over 120 days' : `${a.days} days`));
  });
  node.append(bars);
  const dar = receivable.daysInAr;
  ui['receivable-summary'].textContent = `What open bills owe now${receivable.asOf ? `, as of ${receivable.asOf}` : ''}`
    + `, by the age of the bill: ${money.format(amount(receivable.total))} in all, patients `
    + `${money.format(amount(receivable.patients))}, insurers ${money.format(amount(receivable.insurers))}. `
    + `Days in A/R: ${dar == null ? 'not known (nothing charged in the last 90 days)' : dar}. By age: `
    + `${aging.map((a) => `${a.days} days ${money.format(amount(a.total))}`).join('; ')}.`;
}

// ---- delivery failures and operations ----
/** Prometheus text → Map(name → [{labels, value}]). */
function parseMetrics(text) {
  const out = new Map();
  for (const line of String(text || '').split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line.trim());
    if (!m) continue; // comments (# HELP, # TYPE) and blank lines
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    (out.get(m[1]) || out.set(m[1], []).get(m[1])).push({ labels, value: Number(m[3]) });
  }
  return out;
}
/** The sum of a metric's samples (those whose `label` is `only`, if given); 0 when none was recorded. */
const sum = (metrics, name, label, only) => (metrics.get(name) || [])
  .filter((s) => only === undefined || s.labels[label] === only)
  .reduce((n, s) => n + (Number.isFinite(s.value) ? s.value : 0), 0);
const perLabel = (metrics, name, label, words = {}) => (metrics.get(name) || []).filter((s) => s.value > 0)
  .map((s) => `${words[s.labels[label]] || s.labels[label] || '?'}: ${count.format(s.value)}`).join(', ');

async function loadMetrics(r) {
  const text = await guard(r, 'Operations metrics', () => api('/metrics'));
  if (typeof text !== 'string' || r !== run) return;
  const m = (r.metrics = parseMetrics(text));
  const show = (metric, value, detail) => {
    const node = ui.ops.querySelector(`[data-metric="${metric}"]`);
    node.setAttribute('data-value', value == null ? '' : String(value));
    node.textContent = value == null ? 'not reported' : count.format(value);
    node.parentElement.querySelector('.hint').textContent = detail;
  };
  show('actor_restarts', sum(m, 'actor_restarts_total'),
    perLabel(m, 'actor_restarts_total', 'actor') || 'None since the server started.');
  const nats = m.get('nats_connected');
  show('outbox_backlog', m.has('outbox_pending') ? sum(m, 'outbox_pending') : null, !nats
    ? 'No NATS link on this server: events are not published, so nothing waits.'
    : nats.some((s) => s.value === 1) ? 'NATS connected.' : 'NATS is disconnected: events wait in the outbox.');
  show('notification_failures', sum(m, 'notifications_undeliverable_total'),
    perLabel(m, 'notifications_undeliverable_total', 'channel', CHANNELS) || 'None since the server started.');
  show('open_sockets', sum(m, 'ws_open_sockets'), `Read at ${new Date().toLocaleTimeString()}.`);
  drawDeliveries(r);
}

function drawDeliveries(r) {
  const { notes, metrics: m } = r;
  if (!notes && !m) return;
  const channels = new Set([...(notes ? notes.keys() : Object.keys(CHANNELS)),
    ...(m?.get('notifications_undeliverable_total') || []).map((s) => s.labels.channel).filter(Boolean)]);
  const cell = (field, v) => el('td', { class: 'num', 'data-field': field }, v == null ? '–' : count.format(v));
  const since = (field, name, channel) => cell(field, m ? sum(m, name, 'channel', channel) : null);
  let failed = 0;
  const rows = [...channels].map((channel) => {
    const n = notes?.get(channel);
    failed += n ? n.failed : 0;
    return el('tr', { 'data-channel': channel, class: n && n.failed ? 'has-failures' : null },
      el('th', { scope: 'row' }, CHANNELS[channel] || channel), NOTE_FIGURES.map((k) => cell(k, n?.[k])),
      since('undeliverableSinceStart', 'notifications_undeliverable_total', channel),
      since('retriesSinceStart', 'notification_retries_total', channel),
      since('queueFullSinceStart', 'notification_queue_full_total', channel));
  });
  ui.deliveries.setAttribute('data-failed', notes ? String(failed) : '');
  ui['deliveries-rows'].replaceChildren(...rows);
  const summary = ui['deliveries-summary'];
  summary.className = failed ? 'warn-text' : 'muted';
  summary.textContent = !notes ? 'The last 14 days could not be read.' : !failed
    ? 'No notification failed in the last 14 days.'
    : `${count.format(failed)} notification${failed === 1 ? '' : 's'} could not be delivered in the last 14 days.`;
}

// ---- today's boards ----
async function loadDoctors(r) {
  const doctors = [];
  let after = null;
  for (let page = 0; page < 10; page += 1) { // 5,000 doctors at most
    const list = await guard(r, 'The list of doctors', () => api('/api/providers', { query: { limit: 500, after } }));
    if (!list) return r === run && ui.boards.replaceChildren(el('li', { class: 'empty' }, 'Could not be read.'));
    doctors.push(...(list.doctors || []));
    if (!(after = list.nextAfter)) break;
  }
  r.doctors = doctors.map((d, i) => {
    const counts = el('span', { class: 'board-counts muted' },
      i < BOARDS_COUNTED ? 'Counting today’s slots…' : 'Open the board to see today.');
    const about = [d.specialization, d.timeZone].filter(Boolean).join(' · ');
    const item = el('li', { class: 'board-item', 'data-provider': d.providerId },
      el('a', { class: 'board-link', href: `/board/${encodeURIComponent(d.providerId)}` },
        el('span', { class: 'board-name' }, d.name || d.providerId), el('span', { class: 'board-spec muted' }, about)),
      counts);
    return { ...d, item, counts };
  });
  ui.boards.replaceChildren(...(r.doctors.length ? r.doctors.map((d) => d.item)
    : [el('li', { class: 'empty' }, 'No doctors yet.')]));
  if (r.doctors.length > BOARDS_COUNTED) {
    ui['boards-note'].textContent = `Today's slots are counted for the first ${BOARDS_COUNTED} doctors; `
      + 'open any board to see it live.';
  }
  countBoards(r);
}

/** A recount once the last one began BOARDS_EVERY_MS ago (in a second if it did), unless one is due. */
function scheduleBoards(r) {
  if (r !== run || r.boards.timer) return;
  const wait = Math.max(1000, BOARDS_EVERY_MS - (Date.now() - r.boards.at));
  r.boards.timer = setTimeout(() => { r.boards.timer = null; countBoards(r); }, wait);
}

/** Reads each doctor's board for today with the socket's `board` command, three at a time but paced (one every
 * BOARDS_GAP_MS; a `rate_limited` reply is waited out and asked once more), at most every BOARDS_EVERY_MS. */
async function countBoards(r) {
  if (r !== run || !r.doctors.length) return;
  if (r.boards.busy || r.socket.status !== 'live') { r.boards.owed = true; return; }
  if (Date.now() - r.boards.at < BOARDS_EVERY_MS) return scheduleBoards(r);
  clearTimeout(r.boards.timer);
  Object.assign(r.boards, { busy: true, owed: false, at: Date.now(), timer: null });
  const queue = r.doctors.slice(0, BOARDS_COUNTED);
  const worker = async () => {
    for (let d = queue.shift(); d && r === run; d = queue.shift()) {
      const day = todayIn(d.timeZone), command = { type: 'board', providerId: d.providerId, from: day, to: day };
      try {
        const data = await r.boards.pace(() => (r === run ? r.socket.request(command) : null));
        if (r === run) paintBoard(d, day, data && data.snapshot);
      } catch (err) {
        if (r !== run || err.code === 'forbidden') return r === run && deny(err);
        d.counts.textContent = `Today’s slots could not be read: ${describe(err)}`;
        if (['network', 'timeout', 'rate_limited'].includes(err.code)) r.boards.owed = true;
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  r.boards.busy = false;
  if (r === run && r.boards.owed && r.socket.status === 'live') scheduleBoards(r);
}

function paintBoard(d, day, snapshot) {
  const now = Date.now(), n = { total: 0, booked: 0, held: 0, free: 0, ahead: 0 };
  for (const s of (snapshot && snapshot.slots) || []) {
    if (s.date !== day) continue;
    n.total += 1;
    const state = ['free', 'held'].includes(s.state) ? s.state : 'booked';
    n[state] += 1;
    if (state === 'free' && Date.parse(s.start) > now) n.ahead += 1;
  }
  const moved = ((snapshot && snapshot.needsReschedule) || []).filter((a) => a.date === day).length;
  for (const k of ['total', 'booked', 'held', 'free']) d.item.setAttribute(`data-${k}`, String(n[k]));
  d.item.setAttribute('data-day', day);
  const part = (state, text) => el('span', { class: 'count', 'data-state': state }, text);
  d.counts.classList.toggle('muted', n.total === 0);
  d.counts.replaceChildren(...[...(n.total === 0 ? ['No working hours today.'] : [
    part('booked', `${count.format(n.booked)} booked`),
    part('free', `${count.format(n.free)} free (${count.format(n.ahead)} still ahead)`),
    n.held && part('held', `${count.format(n.held)} held`),
    el('span', { class: 'count muted' }, `of ${count.format(n.total)} slots`),
  ]), moved && part('needs_reschedule', `${count.format(moved)} need a new time`)].filter(Boolean));
}

// ---- start ----
ui['login-form'].addEventListener('submit', onLogin);
ui.logout.addEventListener('click', async () => { stop(); clearProblems(); await logout(); showLogin(); });
ui.refresh.addEventListener('click', () => { if (run) { loadReports(run); loadMetrics(run); countBoards(run); } });
addEventListener('unhandledrejection', (ev) => setBanner(ui.banner, ev.reason ?? new Error('an unexpected failure')));
const session = loadSession();
if (session) enter(session); else showLogin();
