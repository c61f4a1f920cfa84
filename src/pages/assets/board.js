// board.js: the live schedule board at /board/{providerId} (page board.html). It follows the channel
// board:<providerId> over LiveSocket: the subscribe reply's snapshot, then every event once, in seq order.
// A display link (#token=<display token>) shows slot states only; a signed-in doctor or admin (session
// in sessionStorage) also sees patient names; with neither, a sign-in form. CSP: a module from /pages/,
// no inline script or style, no style attributes; DOM built with el() (text as text nodes only).
//
// What the board channel gives (src/service/schedule.rs board_json, the schedule actor's GetBoard):
// the snapshot lists EVERY slot of the doctor's hours, free ones included, for `from`..`to` (default:
// today in the doctor's zone and 6 more days), each with state free/booked/held, appointmentId or holdId,
// `needsReschedule` on booked slots and `patientId` only for the doctor and admins; plus `timeZone`,
// `slotMinutes` and `needsReschedule` (flagged appointments, which may lie outside every slot). Events
// carry the slot's start/end instants, so the board keeps appointments and holds by id and derives each
// slot's state from what overlaps it, as the server does. No REST call is needed for free slots (a
// display token may not call REST at all). `availability_changed` means the slots themselves changed:
// the board fetches a fresh snapshot with the `board` command while staying subscribed.

import { api, clearSession, describe, el, loadSession, login, refresh, setBanner, LiveSocket } from './common.js';

const STATE_WORDS = { free: 'Free', booked: 'Booked', held: 'Held', needs_reschedule: 'Needs new time' };
const STATUS_WORDS = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…',
  unauthorized: 'Not authorised', closed: 'Not connected' };
const HOLDING = new Set(['Scheduled', 'CheckedIn']); // statuses that keep the slot taken
const $ = (id) => document.getElementById(id);
const ui = { title: $('title'), subtitle: $('subtitle'), clock: $('clock'), date: $('clock-date'), zone: $('zone'),
  status: $('status'), banner: $('banner'), login: $('login-area'), board: $('board'),
  changes: $('changes'), seq: $('seq') };

const providerId = (() => {
  try { return decodeURIComponent((/^\/board\/([^/]+)\/?$/.exec(location.pathname) || [])[1] || ''); } catch { return ''; }
})();
const channel = `board:${providerId}`;
const DISPLAY_KEY = `medrelay.display.${providerId}`;
const range = {}; // ?from=YYYY-MM-DD&to=YYYY-MM-DD picks the days (default: the server's week from today)
for (const key of ['from', 'to']) {
  const value = new URLSearchParams(location.search).get(key);
  if (/^\d{4}-\d{2}-\d{2}$/.test(value || '')) range[key] = value;
}

// The board as the last snapshot and the events since make it. viewSeq: the seq the snapshot reflects.
const model = { tz: null, from: null, to: null, slots: [], appts: new Map(), holds: new Map(), viewSeq: 0 };
const slotNodes = new Map(); // slot start (as sent) -> { node, slot }
const names = new Map(); // patientId -> name, or null when it cannot be read
let nameQueue = Promise.resolve();
let socket = null;
let mode = null; // 'display' | 'session'
let changes = 0;
let refreshing = null; // a `board` command in flight: { log: [events applied meanwhile] }
let refreshOwed = false;
let shownDay = null;
let shownMinute = null;

// ---- time in the doctor's zone ----
const formats = new Map();
function fmt(options, locale) {
  const key = JSON.stringify([model.tz, options, locale]);
  if (!formats.has(key)) {
    let f;
    try { f = new Intl.DateTimeFormat(locale, { ...options, timeZone: model.tz || undefined }); } catch {
      f = new Intl.DateTimeFormat(locale, options); // a zone this browser does not know: its own
    }
    formats.set(key, f);
  }
  return formats.get(key);
}
function todayInZone(now = Date.now()) {
  const parts = {};
  const f = fmt({ year: 'numeric', month: '2-digit', day: '2-digit' }, 'en-GB');
  for (const p of f.formatToParts(now)) parts[p.type] = p.value;
  return `${parts.year}-${parts.month}-${parts.day}`;
}
function dayLabel(date, long = true) { // a civil date: formatted at noon UTC so no zone moves it
  const width = long ? 'long' : 'short';
  const f = new Intl.DateTimeFormat(undefined, { weekday: width, day: 'numeric', month: width, timeZone: 'UTC' });
  return f.format(Date.parse(`${date}T12:00:00Z`));
}
const span = (t) => ({ start: t.start, date: t.date, time: t.timeSlot,
  startMs: Date.parse(t.start), endMs: Date.parse(t.end) });
const overlaps = (a, b) => a.startMs < b.endMs && b.startMs < a.endMs;

// ---- the model ----
function loadSnapshot(snapshot, seq) {
  if (!snapshot || !Array.isArray(snapshot.slots)) throw new Error('the server sent a board without slots');
  const { timeZone, from, to } = snapshot;
  Object.assign(model, { tz: timeZone || model.tz, from, to, slots: [], viewSeq: seq });
  model.appts.clear();
  model.holds.clear();
  formats.clear();
  for (const s of snapshot.slots) {
    const slot = span(s);
    model.slots.push(slot);
    // An appointment longer than today's slot length covers several slots: keep its whole extent.
    const [map, id, extra] = s.appointmentId
      ? [model.appts, s.appointmentId, { patientId: s.patientId, needs: !!s.needsReschedule }]
      : [model.holds, s.holdId, { patientId: s.patientId, expiresMs: Date.parse(s.expiresAt) }];
    if (!id) continue;
    const had = map.get(id);
    if (had) had.endMs = Math.max(had.endMs, slot.endMs); else map.set(id, { ...slot, ...extra });
  }
  for (const a of snapshot.needsReschedule || []) {
    model.appts.set(a.appointmentId, { ...span(a), patientId: a.patientId, needs: true }); // exact extent
  }
  model.slots.sort((a, b) => a.startMs - b.startMs);
  renderAll();
}

/** Applies one board event to the model; true when the slots themselves changed (fetch a snapshot). */
function applyEvent(e) {
  const slot = e.slot ? span(e.slot) : null;
  const known = model.appts.get(e.appointmentId);
  switch (e.kind) {
    case 'appointment_booked':
      model.appts.set(e.appointmentId, { ...slot, patientId: e.patientId, needs: false }); break;
    case 'appointment_rescheduled': // a move clears needs-reschedule
      model.appts.set(e.appointmentId, { ...span(e.to), patientId: e.patientId, needs: false }); break;
    case 'appointment_cancelled':
      model.appts.delete(e.appointmentId); break;
    case 'appointment_status_changed': // checked in keeps the slot; completed, no-show, cancelled free it
      if (!HOLDING.has(e.status)) model.appts.delete(e.appointmentId);
      else model.appts.set(e.appointmentId, { ...(known || { ...slot, needs: false }), patientId: e.patientId });
      break;
    case 'appointment_needs_reschedule':
      model.appts.set(e.appointmentId, { ...(known || { ...slot, patientId: e.patientId }),
        needs: !!e.needsReschedule });
      break;
    case 'slot_held': case 'offer_made': // an offer to the waitlist is a hold too
      model.holds.set(e.holdId, { ...slot, patientId: e.patientId, expiresMs: Date.parse(e.expiresAt) }); break;
    case 'slot_released': case 'offer_accepted': case 'offer_expired':
      model.holds.delete(e.holdId); break;
    case 'availability_changed':
      return true;
    default: // other kinds do not change slots
  }
  return false;
}

// ---- rendering ----
function renderAll() {
  slotNodes.clear();
  shownDay = todayInZone();
  const days = new Map();
  if (model.from && shownDay >= model.from && shownDay <= model.to) days.set(shownDay, []);
  for (const s of model.slots) (days.get(s.date) || days.set(s.date, []).get(s.date)).push(s);
  const sections = [...days.keys()].sort().map((date) => {
    const slots = days.get(date).map((slot) => {
      const node = el('li', { class: 'slot', 'data-start': slot.start, 'data-date': slot.date, 'data-time': slot.time },
        el('span', { class: 'time' }, slot.time), el('span', { class: 'state' }));
      slotNodes.set(slot.start, { node, slot });
      return node;
    });
    const today = date === shownDay;
    return el('section', { class: ['day', today && 'today', date < shownDay && 'past'], 'data-date': date },
      el('h2', {}, today ? `Today · ${dayLabel(date)}` : dayLabel(date)),
      slots.length ? el('ol', { class: 'slots' }, slots) : el('p', { class: 'empty' }, 'No working hours this day.'));
  });
  if (!sections.length) sections.push(el('p', { class: 'empty' }, 'No working hours in this period.'));
  const outside = el('section', { class: 'day outside hidden', id: 'outside' },
    el('h2', {}, 'Outside working hours: these need a new time'), el('ol', { class: 'slots', id: 'outside-list' }));
  ui.board.replaceChildren(...sections, outside);
  update();
}

/** Repaints every slot's state from the model (cheap: attributes and text change only where needed). */
function update() {
  const now = Date.now();
  shownMinute = Math.floor(now / 60000);
  const appts = [...model.appts.values()];
  // A hold past its expiry blocks nothing, released or not (the server writes the release a few seconds late).
  const holds = [...model.holds.values()].filter((h) => !(h.expiresMs <= now));
  for (const { node, slot } of slotNodes.values()) {
    const a = appts.find((x) => overlaps(x, slot));
    const h = a ? null : holds.find((x) => overlaps(x, slot));
    const state = a ? (a.needs ? 'needs_reschedule' : 'booked') : h ? 'held' : 'free';
    paint(node, state, (a || h || {}).patientId, slot.endMs <= now);
  }
  const list = $('outside-list');
  if (!list) return;
  const outside = appts.filter((a) => a.needs && a.date >= model.from && a.date <= model.to
    && !model.slots.some((s) => overlaps(a, s))).sort((a, b) => a.startMs - b.startMs);
  list.replaceChildren(...outside.map((a) => {
    const node = el('li', { class: 'slot', 'data-start': a.start, 'data-date': a.date, 'data-time': a.time },
      el('span', { class: 'time' }, `${dayLabel(a.date, false)} ${a.time}`), el('span', { class: 'state' }));
    paint(node, 'needs_reschedule', a.patientId, a.endMs <= now);
    return node;
  }));
  $('outside').classList.toggle('hidden', outside.length === 0);
}

function paint(node, state, patientId, past) {
  if (node.getAttribute('data-state') !== state) {
    node.setAttribute('data-state', state);
    node.querySelector('.state').textContent = STATE_WORDS[state];
  }
  node.classList.toggle('past', past);
  let label = node.querySelector('.patient');
  const name = patientId ? nameOf(patientId) : null; // patientId comes only to the doctor and admins
  if (!name) return label?.remove();
  if (!label) node.append((label = el('span', { class: 'patient' })));
  if (label.textContent !== name) label.textContent = name;
}

/** The patient's name (read once, one request at a time); their id until it is known or if it cannot be read. */
function nameOf(patientId) {
  if (mode === 'session' && !names.has(patientId)) {
    names.set(patientId, undefined);
    nameQueue = nameQueue.then(() => api(`/api/patients/${encodeURIComponent(patientId)}`)).then(
      (p) => { names.set(patientId, (p && p.name) || null); update(); },
      (err) => { if (err.code === 'network') names.delete(patientId); else names.set(patientId, null); });
  }
  return names.get(patientId) || `Patient ${patientId}`;
}

function tick() {
  const now = Date.now();
  ui.clock.textContent = fmt({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(now);
  ui.date.textContent = fmt({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(now);
  ui.zone.textContent = model.tz ? `${model.tz} time` : 'Local time (the doctor’s zone is not known yet)';
  if (!model.from) return;
  if (todayInZone(now) !== shownDay) {
    // A new day: past the snapshot's last day, ask for the new week; in any case move "Today".
    if (!range.to && todayInZone(now) > model.to) refreshSnapshot();
    renderAll();
  } else if (Math.floor(now / 60000) !== shownMinute) update();
}

// ---- live updates ----
function onSnapshot(_channel, snapshot, seq) {
  refreshing = null; // a subscribe snapshot supersedes a `board` command in flight
  if (snapshot && typeof snapshot.name === 'string' && snapshot.name) {
    ui.title.textContent = snapshot.name;
    document.title = `${snapshot.name} · schedule board`;
  }
  ui.seq.setAttribute('data-seq', String(seq));
  loadSnapshot(snapshot, seq);
  setBanner(ui.banner, null);
}

function onEvent(_channel, seq, event) {
  changes += 1;
  ui.changes.setAttribute('data-count', String(changes));
  ui.changes.textContent = `${changes} changes applied`;
  ui.seq.setAttribute('data-seq', String(seq));
  if (refreshing) refreshing.log.push({ seq, event });
  if (seq <= model.viewSeq) return; // already part of the snapshot shown
  if (applyEvent(event)) refreshSnapshot(); else update();
}

/** Fetches a fresh snapshot while staying subscribed; events applied meanwhile are replayed over it. */
function refreshSnapshot() {
  if (refreshing) return; // the answer will replay the later events, and fetch again if one changed hours
  if (mode === 'session') loadProvider(); // hours changes may come with a new name or zone
  const pending = (refreshing = { log: [] });
  socket.request({ type: 'board', providerId, ...range }).then((data) => {
    if (refreshing !== pending) return;
    refreshing = null;
    loadSnapshot(data.snapshot, data.seq);
    let again = false;
    for (const { seq, event } of pending.log) if (seq > data.seq) again = applyEvent(event) || again;
    update();
    if (again) refreshSnapshot();
  }, (err) => {
    if (refreshing !== pending) return;
    refreshing = null;
    if (err.code === 'network' || err.code === 'timeout') refreshOwed = true; // once live again
    else socket.resync(channel); // e.g. a board replica, which does not answer `board`: subscribe afresh
  });
}

function onStatus(status) {
  const state = status === 'closed-unauthorized' ? 'unauthorized' : status;
  ui.status.setAttribute('data-state', state);
  ui.status.textContent = STATUS_WORDS[state] || state;
  document.body.classList.toggle('stale', state !== 'live');
  if (state === 'live' && refreshOwed) { refreshOwed = false; refreshSnapshot(); }
  if (state !== 'unauthorized') return;
  if (mode === 'display') {
    try { sessionStorage.removeItem(DISPLAY_KEY); } catch { /* nothing kept */ }
    setBanner(ui.banner, 'This display link is no longer valid (expired or wrong). '
      + 'Ask the clinic for a new board link.');
  } else {
    clearSession();
    setBanner(ui.banner, 'Your sign-in has ended. Please sign in again to keep this board live.');
    showLogin();
  }
}

function onSocketError(err, { channel: about } = {}) {
  if (err && err.code === 'unauthorized') return; // shown by onStatus
  if (about && (err.code === 'not_found' || err.code === 'forbidden')) {
    socket.close(); // nothing to watch: status "Not connected", and no reconnecting
    return setBanner(ui.banner, err.code === 'not_found' ? `There is no doctor “${providerId}”.`
      : 'You may not watch this doctor’s board with this sign-in or display link.');
  }
  setBanner(ui.banner, err);
}

// ---- start ----
async function loadProvider() {
  try {
    const p = await api(`/api/providers/${encodeURIComponent(providerId)}`);
    ui.title.textContent = p.name;
    ui.subtitle.textContent = p.specialization || '';
    document.title = `${p.name} · schedule board`;
    if (!model.tz && p.timeZone) { model.tz = p.timeZone; formats.clear(); tick(); }
  } catch (err) {
    if (err.code === 'not_found') setBanner(ui.banner, `There is no doctor “${providerId}”.`);
    // Not fatal (the board comes over the socket; a board replica serves no REST): said under the title.
    else if (err.code !== 'unauthorized') ui.subtitle.textContent = `The doctor’s name cannot be read: ${describe(err)}`;
  }
}

function credentials() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    try { sessionStorage.setItem(DISPLAY_KEY, fromHash); } catch { /* kept for this load only */ }
    history.replaceState(null, '', location.pathname + location.search); // out of the address bar and history
    return { mode: 'display', token: fromHash };
  }
  let stored = null;
  try { stored = sessionStorage.getItem(DISPLAY_KEY); } catch { /* none */ }
  if (stored) return { mode: 'display', token: stored };
  return loadSession() ? { mode: 'session' } : null;
}

function start(creds) {
  mode = creds.mode;
  ui.login.classList.add('hidden');
  ui.login.replaceChildren();
  if (socket) socket.close();
  socket = new LiveSocket({
    token: mode === 'display' ? creds.token : () => loadSession()?.accessToken,
    // A display token cannot be renewed; a session is, a minute before its access token expires.
    renew: mode === 'session' ? async () => (await refresh()).accessToken : null,
    onStatus, onSnapshot, onEvent, onError: onSocketError,
  });
  socket.subscribe(channel, range);
  socket.start();
  if (mode === 'session') loadProvider();
}

function showLogin() {
  const error = el('p', { class: 'error hidden', role: 'alert' });
  const username = el('input', { id: 'login-username', name: 'username', autocomplete: 'username', required: true });
  const password = el('input', { id: 'login-password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true });
  const button = el('button', { type: 'submit' }, 'Sign in');
  const form = el('form', { class: 'login', id: 'login-form', onsubmit: async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    setBanner(error, null);
    try {
      await login(username.value.trim(), password.value);
      password.value = '';
      setBanner(ui.banner, null);
      start({ mode: 'session' });
    } catch (err) { setBanner(error, err); } finally { button.disabled = false; }
  } },
  el('h2', {}, 'Sign in to watch this board'),
  el('label', { for: 'login-username' }, 'Username'), username,
  el('label', { for: 'login-password' }, 'Password'), password, button, error,
  el('p', { class: 'hint' }, 'A wall display opens this page with its display link instead.'));
  ui.login.replaceChildren(form);
  ui.login.classList.remove('hidden');
  username.focus();
}

addEventListener('unhandledrejection', (ev) => setBanner(ui.banner, ev.reason ?? new Error('an unexpected failure')));
if (providerId) {
  ui.title.textContent = `Board ${providerId}`; // the doctor's name replaces it when it can be read
  document.title = `Board ${providerId} · schedule board`;
}
tick();
setInterval(tick, 1000);
if (!/^[A-Za-z0-9_-]{1,64}$/.test(providerId)) {
  onStatus('closed');
  setBanner(ui.banner, 'This address does not name a doctor: open /board/<doctor id>.');
} else {
  const creds = credentials();
  if (creds) start(creds);
  else { ui.status.setAttribute('data-state', 'unauthorized'); ui.status.textContent = 'Sign in needed'; showLogin(); }
}
