// app-mine.js: the patient's own part of the page (/app): upcoming appointments (move, cancel) and the
// in-app reminders and notices, both live on the patient's channel `patient:<patientId>`.
//
// Appointments: read with GET /api/appointments (the patient's own) whenever the channel gives a
// snapshot (first subscribe, or a resync), then kept live from the channel's appointment events.
// Events that arrive while the list is being read are applied again over the answer (every change is
// idempotent: set, move, delete), so none is lost in between.
//
// Notices (docs/notifications.md): `notification` events on the same channel. Subscribing afresh is
// answered with `unacknowledged: N` and those N notices right after (LiveSocket's onUnacknowledged);
// a reconnect with `since` replays what was missed (onEvent). Once a notice is on screen and the page
// is visible, the page acknowledges up to its seq ({"type":"ack","channel","seq"}), which marks it
// delivered for all the patient's devices; acknowledged notices are not sent again, so the list holds
// what arrived since the page was opened (they also went by e-mail or text, as the preferences say).

import { addDays, api, el, todayIn } from './common.js';
import { HOLDING, span } from './board-model.js';
import { $, ctx, attr, clock, dayLabel, doctorName, doctorZone, reconcile, text, yourTime }
  from './app-util.js';
import { endMove, movingId, startMove } from './app-book.js';

const ui = { list: $('appointments'), empty: $('appointments-empty'), notices: $('notifications'),
  noticesEmpty: $('notifications-empty') };

const appts = new Map(); // appointmentId -> { appointmentId, providerId, status, needs, ...span }
let loaded = false;
let reading = null; // a list read in flight: { log: [events applied meanwhile] }
const busyIds = new Set(); // appointments with a cancel in flight
const notices = new Map(); // notificationId -> { seq, event, fresh }
let ackedSeq = 0, seenSeq = 0, ackTimer = null, ackInFlight = false;

const channelOf = () => `patient:${ctx.patientId}`;

// ---- appointments ----
function keep(a) {
  return { appointmentId: a.appointmentId, providerId: a.providerId, status: a.status || 'Scheduled',
    needs: !!a.needsReschedule, tz: a.timeZone || null, ...span(a.slot || a) };
}

/** Reads the list (again); events that come meanwhile are replayed over the answer. */
export async function refreshList() {
  const wait = (reading = { log: [] });
  try {
    // From yesterday (UTC): every zone's today is in, long-past history is not.
    const data = await api('/api/appointments', { query: { from: addDays(todayIn('UTC'), -1) } });
    if (reading !== wait) return;
    appts.clear();
    for (const a of data.appointments || []) if (HOLDING.has(a.status)) appts.set(a.appointmentId, keep(a));
    for (const { event } of wait.log) apply(event);
    loaded = true;
    render();
  } catch (err) {
    if (reading === wait) ctx.fail(err);
  } finally { if (reading === wait) reading = null; }
}

/** Applies one appointment event of the patient's channel; true when it was one. */
function apply(e) {
  const had = appts.get(e.appointmentId);
  switch (e.kind) {
    case 'appointment_booked':
      appts.set(e.appointmentId, { ...had, ...keep({ ...e, status: 'Scheduled' }), needs: false }); return true;
    case 'appointment_rescheduled':
      appts.set(e.appointmentId, { ...keep({ ...e, slot: e.to, status: had?.status, timeZone: had?.tz }), needs: false });
      return true;
    case 'appointment_cancelled': appts.delete(e.appointmentId); return true;
    case 'appointment_status_changed':
      if (HOLDING.has(e.status)) appts.set(e.appointmentId, { ...(had || keep(e)), status: e.status });
      else appts.delete(e.appointmentId);
      return true;
    case 'appointment_needs_reschedule':
      appts.set(e.appointmentId, { ...(had || keep(e)), needs: !!e.needsReschedule }); return true;
    default: return false;
  }
}

const STATUS_WORDS = { CheckedIn: 'Checked in' };

function describeAppt(a) {
  const tz = doctorZone(a.providerId) || a.tz;
  const later = yourTime(a.startMs, tz);
  return { when: `${dayLabel(a.date)}, ${a.time}`, zone: tz ? `${tz} time ${later}`.trim() : later,
    label: `${doctorName(a.providerId)} on ${dayLabel(a.date)} at ${a.time}` };
}

function render() {
  const now = Date.now();
  const list = [...appts.values()].filter((a) => a.endMs > now).sort((a, b) => a.startMs - b.startMs);
  reconcile(ui.list, list, (a) => a.appointmentId, make, paint);
  ui.empty.classList.toggle('hidden', !loaded || list.length > 0);
  if (movingId() && !appts.has(movingId())) endMove(false);
}

function make(a) {
  const li = el('li', { class: 'appointment', 'data-id': a.appointmentId, tabindex: '-1' },
    el('div', { class: 'when' }, el('strong', { class: 'date' }), el('span', { class: 'zone hint' })),
    el('div', { class: 'with' }), el('p', { class: 'flag hidden' }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'move secondary', onclick: () => {
        const now = appts.get(a.appointmentId);
        if (now) startMove(now);
      } }, 'Move'),
      el('button', { type: 'button', class: 'cancel danger', onclick: () => cancel(a.appointmentId) }, 'Cancel')));
  paint(li, a);
  return li;
}

function paint(li, a) {
  const d = describeAppt(a), doctor = ctx.doctors.get(a.providerId);
  attr(li, 'data-start', a.start);
  attr(li, 'data-status', a.status);
  attr(li, 'data-needs-reschedule', a.needs ? 'true' : null);
  text(li.querySelector('.date'), d.when);
  text(li.querySelector('.zone'), d.zone);
  text(li.querySelector('.with'), [doctorName(a.providerId), doctor?.specialization, STATUS_WORDS[a.status]]
    .filter(Boolean).join(' · '));
  const flag = li.querySelector('.flag');
  text(flag, a.needs ? 'The doctor’s hours have changed: please move this appointment to a new time.' : '');
  flag.classList.toggle('hidden', !a.needs);
  const move = li.querySelector('button.move'), cancelButton = li.querySelector('button.cancel');
  const busy = busyIds.has(a.appointmentId);
  move.disabled = busy || a.status !== 'Scheduled';
  cancelButton.disabled = busy;
  attr(move, 'aria-label', `Move the appointment with ${d.label}`);
  attr(cancelButton, 'aria-label', `Cancel the appointment with ${d.label}`);
  text(cancelButton, busy ? 'Cancelling…' : 'Cancel');
}

async function cancel(id) {
  const a = appts.get(id);
  if (!a || busyIds.has(id)) return;
  busyIds.add(id);
  render();
  try {
    await api(`/api/appointments/${encodeURIComponent(id)}`, { method: 'DELETE' });
    const li = ui.list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
    const next = li?.nextElementSibling || li?.previousElementSibling;
    appts.delete(id);
    if (movingId() === id) endMove(false);
    ctx.say(`Cancelled your appointment with ${describeAppt(a).label}.`);
    render();
    (next?.querySelector('button.cancel') || $('mine-title')).focus?.();
  } catch (err) {
    ctx.fail(err);
    if (err.code === 'not_found' || err.code === 'gone') appts.delete(id);
  } finally { busyIds.delete(id); render(); }
}

/** Shows what a booking made at once (the channel's event says the same a moment later). */
export function booked(appointmentId, providerId, slot) {
  appts.set(appointmentId, { appointmentId, providerId, status: 'Scheduled', needs: false, ...slot });
  render();
  highlight(appointmentId);
}
/** Shows a move at once. */
export function moved(appointmentId, slot) {
  const had = appts.get(appointmentId);
  if (had) appts.set(appointmentId, { ...had, ...slot, needs: false });
  render();
  highlight(appointmentId);
}
function highlight(id) {
  const li = ui.list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (!li) return;
  li.classList.add('fresh');
  setTimeout(() => li.classList.remove('fresh'), 4000);
}

// ---- notices ----
const CATEGORY_WORDS = { appointment_reminder: 'Reminder', appointment_change: 'Appointment change',
  billing: 'Billing', marketing: 'News' };

function addNotice(seq, e, fresh) {
  if (notices.has(e.notificationId)) return;
  notices.set(e.notificationId, { seq, event: e, fresh });
  seenSeq = Math.max(seenSeq, seq);
  renderNotices();
  scheduleAck();
}

function renderNotices() {
  const list = [...notices.values()].sort((a, b) => b.seq - a.seq);
  reconcile(ui.notices, list, (n) => n.event.notificationId, ({ event: e, fresh }) => {
    const at = Date.parse(e.at);
    return el('li', { class: ['notification', fresh && 'unread'], 'data-id': e.notificationId,
      'data-category': e.category, 'data-appointment-id': e.appointmentId || null },
    el('div', { class: 'meta' }, el('span', { class: 'category' }, CATEGORY_WORDS[e.category] || 'Notice'),
      Number.isFinite(at) ? el('time', { datetime: e.at }, `${dayLabel(todayIn(null, at), false)}, ${clock(at, null)}`) : null),
    el('strong', { class: 'title' }, e.title || 'Notice'),
    e.body ? el('p', { class: 'body' }, e.body) : null,
    el('button', { type: 'button', class: 'dismiss secondary', 'aria-label': `Dismiss: ${e.title || 'notice'}`,
      onclick: () => dismiss(e.notificationId) }, 'Dismiss'));
  });
  ui.noticesEmpty.classList.toggle('hidden', list.length > 0);
}

function dismiss(id) {
  const li = ui.notices.querySelector(`li[data-id="${CSS.escape(id)}"]`);
  const next = li?.nextElementSibling || li?.previousElementSibling;
  notices.delete(id);
  renderNotices();
  (next?.querySelector('button.dismiss') || $('notices-title')).focus?.();
}

/** Acknowledges what is on screen, once the page is seen. */
function scheduleAck() {
  clearTimeout(ackTimer);
  ackTimer = setTimeout(ack, 800);
}
async function ack() {
  const seq = seenSeq;
  if (seq <= ackedSeq || ackInFlight || document.visibilityState !== 'visible') return;
  if (!ctx.socket || ctx.socket.status !== 'live') return; // sent again once live
  ackInFlight = true;
  try {
    const done = await ctx.socket.request({ type: 'ack', channel: channelOf(), seq });
    ackedSeq = Math.max(ackedSeq, done?.seq ?? seq);
    if (seenSeq > ackedSeq) scheduleAck(); // a notice that came while this one was in flight
  } catch (err) {
    if (err.code !== 'network' && err.code !== 'timeout') ackedSeq = Math.max(ackedSeq, seq); // not again
  } finally { ackInFlight = false; }
}
document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') scheduleAck(); });
// Unread marks fade once seen for a while.
setInterval(() => {
  if (document.visibilityState !== 'visible') return;
  for (const li of ui.notices.querySelectorAll('li.unread')) {
    li.dataset.seen = String(Number(li.dataset.seen || 0) + 1);
    if (Number(li.dataset.seen) >= 2) li.classList.remove('unread');
  }
  render(); // appointments that have ended leave the list
}, 30000);

// ---- live updates (called by app.js for the patient's channel) ----
export function onSnapshot(_ch, _snapshot, _seq, { resync } = {}) {
  if (resync) ackedSeq = 0;
  refreshList();
}
export function onEvent(_ch, seq, event) {
  if (event.kind === 'notification') return addNotice(seq, event, true);
  if (reading) reading.log.push({ seq, event });
  if (apply(event)) render();
}
export function onUnacknowledged(_ch, seq, event) {
  if (event.kind === 'notification') addNotice(seq, event, true);
}
/** The socket is live again: acknowledge what came while it was not. */
export function onLive() { scheduleAck(); }
/** The directory is read: names and zones in the list. */
export function repaint() { for (const li of ui.list.children) { const a = appts.get(li.dataset.id); if (a) paint(li, a); } }

/** Forgets everything (signed out). */
export function reset() {
  appts.clear(); notices.clear(); busyIds.clear();
  loaded = false; reading = null; ackedSeq = 0; seenSeq = 0; clearTimeout(ackTimer);
  ui.list.replaceChildren(); ui.notices.replaceChildren();
  ui.empty.classList.add('hidden'); ui.noticesEmpty.classList.remove('hidden');
}
