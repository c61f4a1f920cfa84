// board.js: the live schedule board at /board/{providerId} (page board.html). It follows the channel
// board:<providerId> over LiveSocket: the subscribe reply's snapshot, then every event once, in seq order.
// A display link (#token=<display token>) shows slot states only; a signed-in doctor or admin (session
// in sessionStorage) also sees patient names; with neither, a sign-in form, except inside a frame (a
// waiting-room system may embed the board), where only display links are taken and no form is shown.
// CSP: a module from /pages/, no inline script or style, no style attributes; DOM built with el().
//
// The board is kept by BoardModel (board-model.js, shared with the booking page): the snapshot lists
// every slot of the doctor's hours for `from`..`to` (default: today in the doctor's zone and 6 more
// days); events carry the start/end instants of what they change, and each slot's state is derived from
// what overlaps it. No REST call is needed for free slots (a display token may not call REST at all).

import { api, clearSession, describe, el, loadSession, login, refresh, setBanner, showStatus, todayIn,
  LiveSocket } from './common.js';
import { BoardModel, overlaps } from './board-model.js';

const STATE_WORDS = { free: 'Free', booked: 'Booked', held: 'Held', needs_reschedule: 'Needs new time' };
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

// Whether another page frames this one: a framed sign-in form would invite UI-redress (clickjacking).
const framed = (() => { try { return window.top !== window; } catch { return true; } })();

let socket = null;
let mode = null; // 'display' | 'session'
let changes = 0;
let refreshOwed = false; // a `board` command to send once the socket is live again
let providerOwed = false; // the doctor's name and details to read again with that command (a new day)
let shownDay = null;
let shownMinute = null;
// The board as the last snapshot and the events since make it; `refresh()` sends the `board` command.
const model = new BoardModel({
  request: () => {
    if (socket?.status !== 'live') { refreshOwed = true; return null; } // sent once live again
    if (providerOwed && mode === 'session') loadProvider();
    providerOwed = false;
    return socket.request({ type: 'board', providerId, ...range });
  },
  refreshed: (data) => { showName(data.snapshot); loadedSnapshot(); },
  failed: (err) => {
    if (err.code === 'network' || err.code === 'timeout') refreshOwed = true; // once live again
    else socket.resync(channel); // e.g. a board replica, which does not answer `board`: subscribe afresh
  },
});
const refreshSnapshot = () => model.refresh();
const slotNodes = new Map(); // slot start (as sent) -> { node, slot }
const names = new Map(); // patientId -> name, or null when it cannot be read
let nameQueue = Promise.resolve();

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
function dayLabel(date, long = true) { // a civil date: formatted at noon UTC so no zone moves it
  const width = long ? 'long' : 'short';
  const f = new Intl.DateTimeFormat(undefined, { weekday: width, day: 'numeric', month: width, timeZone: 'UTC' });
  return f.format(Date.parse(`${date}T12:00:00Z`));
}
const todayInZone = (now = Date.now()) => todayIn(model.tz, now);

// ---- rendering ----
/** After a snapshot (its zone may be new): every day and slot drawn afresh. */
function loadedSnapshot() {
  formats.clear();
  renderAll();
}

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
  for (const { node, slot } of slotNodes.values()) {
    const { appt, hold } = model.occupant(slot, now) || {};
    const state = appt ? (appt.needs ? 'needs_reschedule' : 'booked') : hold ? 'held' : 'free';
    paint(node, state, (appt || hold || {}).patientId, slot.endMs <= now);
  }
  const appts = [...model.appts.values()];
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
    // A new day: past the snapshot's last day, ask for the new week (and the doctor's details, once),
    // when the socket is live or as soon as it is again; in any case move "Today".
    if (!range.to && todayInZone(now) > model.to) { providerOwed = true; refreshSnapshot(); }
    renderAll();
  } else if (Math.floor(now / 60000) !== shownMinute) update();
}

// ---- live updates ----
/** The doctor's name as the board's snapshot gives it (public: a display link shows it too). */
function showName(snapshot) {
  if (!snapshot || typeof snapshot.name !== 'string' || !snapshot.name) return;
  ui.title.textContent = snapshot.name;
  document.title = `${snapshot.name} · schedule board`;
}

function onSnapshot(_channel, snapshot, seq) {
  showName(snapshot);
  ui.seq.setAttribute('data-seq', String(seq));
  model.onSnapshot(snapshot, seq); // it supersedes a `board` command in flight
  loadedSnapshot();
  setBanner(ui.banner, null);
}

function onEvent(_channel, seq, event) {
  changes += 1;
  ui.changes.setAttribute('data-count', String(changes));
  ui.changes.textContent = `${changes} changes applied`;
  ui.seq.setAttribute('data-seq', String(seq));
  if (model.onEvent(seq, event)) update(); // a change of hours fetches a snapshot instead
}

function onStatus(status) {
  const state = showStatus(ui.status, status);
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
  if (framed) return null; // inside a frame, display links only: no sign-in, not even a kept one
  return loadSession() ? { mode: 'session' } : null;
}

function start(creds) {
  mode = creds.mode;
  providerOwed = false;
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

/** Inside a frame: no sign-in form (a framed form invites UI-redress), only a word about display links. */
function askForDisplayLink() {
  ui.status.setAttribute('data-state', 'unauthorized');
  ui.status.textContent = 'Display link needed';
  ui.login.replaceChildren(el('div', { class: 'login', id: 'display-link-needed' },
    el('h2', {}, 'Open this board with its display link'),
    el('p', { class: 'hint' }, 'This board is shown inside another page, where it offers no sign-in. '
      + 'Ask the clinic for the board’s display link, or open the board in a window of its own to sign in.')));
  ui.login.classList.remove('hidden');
}

function showLogin() {
  if (framed) return askForDisplayLink();
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
