// app-book.js: the booking part of the patient page (/app): pick a doctor and a day, see that day's
// FREE slots live, book one (or move an appointment to it) after a confirm step.
//
// The free slots come from the doctor's board channel `board:<providerId>` over the LiveSocket,
// subscribed for the one day shown (`from` = `to` = the day), kept by BoardModel (board-model.js, as on
// the board page): the snapshot lists every slot of the doctor's hours, events carry the start and end
// instants of what they change, and each slot's state is derived from what overlaps it, as the server
// does. A patient's board frames carry no patient ids, so the patient's own appointments show as taken
// like anyone's. `availability_changed` (other hours, zone or slot length) fetches a fresh snapshot with
// the `board` command while staying subscribed. Slots that begin sooner than the booking notice are not
// offered when the snapshot gives it (`minNoticeMinutes`); when it does not, only begun slots are left out.

import { addDays, api, ApiError, describe, el, todayIn } from './common.js';
import { BoardModel, bookable, noticeOf } from './board-model.js';
import { $, ctx, attr, dayLabel, doctorName, isDate, reconcile, text, yourTime } from './app-util.js';

const ui = { doctor: $('doctor'), day: $('day'), prev: $('day-prev'), next: $('day-next'), info: $('doctor-info'),
  title: $('slots-title'), summary: $('slots-summary'), slots: $('slots'), nextFree: $('next-free'),
  confirm: $('confirm'), confirmText: $('confirm-text'), confirmBook: $('confirm-book'), confirmBack: $('confirm-back'),
  confirmError: $('confirm-error'), done: $('book-done'),
  moveBar: $('move-bar'), moveText: $('move-text'), moveCancel: $('move-cancel'), section: $('book') };

let channel = null; // board:<providerId> subscribed, or null
let pending = null; // the slot being confirmed: { slot, lost: whether it was taken meanwhile }
let moving = null; // the appointment being moved: { appointmentId, providerId, date, time, start, ... }
let busy = false; // a booking or move in flight
let nextFreeAsk = 0; // to drop an older "next free day" answer

const boardChannel = (id) => `board:${id}`;

// The board of the doctor and day shown, as its last snapshot and the events since make it.
const model = Object.assign(new BoardModel({
  request: () => ctx.socket?.request({ type: 'board', providerId: model.providerId, from: model.day, to: model.day }) ?? null,
  refreshed: () => { model.loaded = true; render(); },
  failed: () => { if (channel) ctx.socket?.resync(channel); },
}), { providerId: null, day: null, loaded: false });

/** The day's slots nobody has that may still be booked (`all`: that have not begun, notice or not). */
function freeSlots(now = Date.now(), all = false) {
  return model.slots.filter((s) => s.date === model.day && bookable(s.startMs, all ? null : model.noticeMs, now)
    && !model.occupant(s, now));
}

/** "90 minutes", "2 hours", "1 day". */
function duration(ms) {
  const m = Math.round(ms / 60000);
  const [n, unit] = m % 1440 === 0 ? [m / 1440, 'day'] : m % 60 === 0 ? [m / 60, 'hour'] : [m, 'minute'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

// ---- rendering ----
/** Repaints the free slots (cheap: buttons are kept by start time). */
function render() {
  const day = model.day, tz = model.tz;
  if (!day) return;
  const today = tz ? todayIn(tz) : null;
  text(ui.title, `${dayLabel(day)}${today === day ? ' (today)' : ''}`);
  if (!model.loaded) {
    attr(ui.slots, 'aria-busy', 'true');
    text(ui.summary, 'Loading free times…');
    return;
  }
  attr(ui.slots, 'aria-busy', null);
  const past = !!today && day < today, now = Date.now();
  const open = past ? [] : freeSlots(now, true); // not begun; those inside the notice are said, not offered
  const free = open.filter((s) => bookable(s.startMs, model.noticeMs, now));
  reconcile(ui.slots, free, (s) => s.start, (s) => {
    const later = yourTime(s.startMs, tz);
    return el('button', { type: 'button', class: 'slot-free', 'data-start': s.start, 'data-date': s.date,
      'data-time': s.time, 'aria-label': `${s.time} ${later} on ${dayLabel(s.date)}`.replace(/\s+/g, ' '),
      'aria-pressed': 'false', onclick: () => choose(s.start) },
    el('span', { class: 'time' }, s.time), later ? el('span', { class: 'local' }, later.slice(1, -1)) : null);
  });
  for (const b of ui.slots.children) attr(b, 'aria-pressed', String(pending?.slot.start === b.dataset.start));
  const zone = tz ? ` Times are ${tz} time.` : '';
  // Free but inside the booking notice (known only when the snapshot gives it): said, not offered.
  const soon = model.noticeMs ? open.length - free.length : 0;
  const notice = soon ? ` ${soon} sooner free ${soon === 1 ? 'time is' : 'times are'} too soon to book: `
    + `bookings close ${duration(model.noticeMs)} before the time.` : '';
  text(ui.summary, past ? 'This day has passed. Please choose another day.'
    : free.length ? `${free.length} free ${free.length === 1 ? 'time' : 'times'}.${zone}${notice}`
      : `No free times this day.${zone}${notice}`);
  if (free.length || past) ui.nextFree.classList.add('hidden');
  if (pending && !pending.lost && !busy && !free.some((s) => s.start === pending.slot.start)) {
    const tooSoon = !bookable(pending.slot.startMs, model.noticeMs);
    lost(new ApiError({ code: tooSoon ? 'too_soon' : 'slot_taken' }));
  }
}

/** When a day has no free time: looks up the next day that has one (in the next two weeks). */
function findNextFree() {
  const ask = ++nextFreeAsk, { providerId, day } = model;
  ui.nextFree.classList.add('hidden');
  if (!ctx.socket) return;
  ctx.socket.request({ type: 'board', providerId, from: addDays(day, 1), to: addDays(day, 14) }).then((data) => {
    if (ask !== nextFreeAsk || model.providerId !== providerId || model.day !== day || freeSlots().length) return;
    const now = Date.now(), notice = noticeOf(data.snapshot);
    const first = (data.snapshot?.slots || []).find((s) => s.state === 'free'
      && bookable(Date.parse(s.start), notice, now));
    ui.nextFree.replaceChildren(first
      ? el('p', {}, `The next free time is ${dayLabel(first.date)} at ${first.timeSlot}. `,
        el('button', { type: 'button', class: 'secondary', onclick: () => setDay(first.date, true) },
          `Show ${dayLabel(first.date, false)}`))
      : el('p', {}, `${doctorName(providerId)} has no free time in the two weeks after this day.`));
    ui.nextFree.classList.remove('hidden');
  }, () => {}); // only a hint: nothing to say when it cannot be read
}

// ---- choosing, confirming, booking, moving ----
function choose(start) {
  if (busy) return;
  const slot = freeSlots().find((s) => s.start === start);
  if (!slot) return render();
  pending = { slot, lost: false };
  ui.confirmError.classList.add('hidden');
  ui.confirmBook.classList.remove('hidden');
  ui.done.classList.add('hidden');
  const who = doctorName(model.providerId), when = `${dayLabel(slot.date)} at ${slot.time}`;
  const later = yourTime(slot.startMs, model.tz), zone = model.tz ? ` (${model.tz} time)` : '';
  text(ui.confirmText, moving
    ? `Move your appointment with ${who} from ${dayLabel(moving.date)} at ${moving.time} to ${when}${zone}? ${later}`
    : `Book ${who} on ${when}${zone}? ${later}`);
  text(ui.confirmBook, moving ? 'Move to this time' : 'Book this time');
  ui.confirmBook.disabled = false;
  ui.confirm.classList.remove('hidden');
  render();
  ui.confirmBook.focus();
}

/** The slot being confirmed cannot be had (taken meanwhile): said in the panel, and no button to book it. */
function lost(err) {
  pending.lost = true;
  const hadFocus = document.activeElement === ui.confirmBook;
  ui.confirmBook.classList.add('hidden');
  text(ui.confirmError, `${describe(err)} Please choose another time.`);
  ui.confirmError.classList.remove('hidden');
  if (hadFocus) ui.confirmBack.focus();
  ctx.fail(err);
}

function closeConfirm(refocus = true) {
  const was = pending?.slot.start;
  pending = null;
  ui.confirm.classList.add('hidden');
  for (const b of ui.slots.children) attr(b, 'aria-pressed', 'false');
  if (refocus) ([...ui.slots.children].find((b) => b.dataset.start === was) || ui.day).focus();
}

async function confirm() {
  if (!pending || busy) return;
  const { slot } = pending, providerId = model.providerId, move = moving;
  busy = true;
  ui.confirmBook.disabled = true;
  text(ui.confirmBook, move ? 'Moving…' : 'Booking…');
  try {
    if (move) {
      await api(`/api/appointments/${encodeURIComponent(move.appointmentId)}`, { method: 'PUT',
        body: { appointmentDate: slot.date, timeSlot: slot.time, status: 'Rescheduled' } });
      ctx.mine?.moved(move.appointmentId, slot);
      model.appts.set(move.appointmentId, slot);
      endMove(false);
      ctx.say(`Moved: your appointment with ${doctorName(providerId)} is now on ${dayLabel(slot.date)} at ${slot.time}.`);
    } else {
      const made = await api('/api/appointments', { method: 'POST', body: { patientId: ctx.patientId, providerId,
        appointmentDate: slot.date, timeSlot: slot.time, status: 'Scheduled' } });
      model.appts.set(made.appointmentId, slot); // the board's event says the same a moment later
      ctx.mine?.booked(made.appointmentId, providerId, slot);
      ctx.say(`Booked: ${doctorName(providerId)} on ${dayLabel(slot.date)} at ${slot.time}.`);
    }
    closeConfirm(false);
    text(ui.done, `${move ? 'Moved to' : 'Booked:'} ${dayLabel(slot.date)} at ${slot.time} with ${doctorName(providerId)}. `
      + 'It is in your appointments.');
    ui.done.classList.remove('hidden');
    ui.done.focus();
  } catch (err) {
    ui.confirmBook.disabled = false;
    text(ui.confirmBook, move ? 'Move to this time' : 'Book this time');
    if (pending && ['slot_taken', 'slot_held', 'too_soon', 'too_far', 'outside_availability'].includes(err.code)) lost(err);
    else {
      if (pending) { text(ui.confirmError, describe(err)); ui.confirmError.classList.remove('hidden'); }
      ctx.fail(err);
    }
  } finally { busy = false; render(); }
}

/** Starts moving `appt` (from the appointments list): its doctor and day, and a bar that says so. */
export function startMove(appt) {
  moving = appt;
  closeConfirm(false);
  text(ui.moveText, `Choose a new time for your appointment with ${doctorName(appt.providerId)} on `
    + `${dayLabel(appt.date)} at ${appt.time}. Your current time stays booked until the move is done.`);
  ui.moveBar.classList.remove('hidden');
  ui.doctor.disabled = true; // an appointment moves within its doctor's schedule
  const today = model.tz && model.providerId === appt.providerId ? todayIn(model.tz) : null;
  setDoctor(appt.providerId, today && appt.date < today ? today : appt.date);
  ui.section.scrollIntoView({ block: 'start', behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
  ui.moveBar.focus();
}

/** Leaves move mode (done, cancelled, or the appointment is gone). */
export function endMove(refocus = true) {
  if (!moving) return;
  const id = moving.appointmentId;
  moving = null;
  ui.moveBar.classList.add('hidden');
  ui.doctor.disabled = ctx.doctors.size === 0;
  if (pending) closeConfirm(false);
  if (refocus) $('appointments').querySelector(`li[data-id="${CSS.escape(id)}"] button.move`)?.focus();
}
export const movingId = () => moving?.appointmentId ?? null;

// ---- doctor and day ----
/** Shows `providerId` on `day` (default: the day shown, or today in the doctor's zone). */
function setDoctor(providerId, day = null) {
  const doctor = ctx.doctors.get(providerId);
  if (!doctor) return;
  if (ui.doctor.value !== providerId) ui.doctor.value = providerId;
  const changed = model.providerId !== providerId;
  model.providerId = providerId;
  model.tz = doctor.timeZone || null;
  text(ui.info, [doctor.specialization, doctor.timeZone && `times in ${doctor.timeZone} time`].filter(Boolean).join(' · '));
  const today = todayIn(model.tz);
  ui.day.min = today;
  let next = day || model.day;
  if (!isDate(next) || next < today) next = today;
  if (changed && channel) { ctx.socket?.unsubscribe(channel); channel = null; }
  setDay(next, false, changed);
}

/** Shows `day` for the doctor shown; resubscribes the board for it. */
function setDay(day, focus = false, force = false) {
  if (!isDate(day) || !model.providerId) return;
  if (ui.day.value !== day) ui.day.value = day;
  // In the address (?doctor=&day=): a reload, or a link, shows the same doctor and day.
  const query = new URLSearchParams({ doctor: model.providerId, day });
  if (location.search !== `?${query}`) history.replaceState(null, '', `${location.pathname}?${query}${location.hash}`);
  if (!force && day === model.day && channel) return;
  if (pending) closeConfirm(false);
  model.clear(); // and any `board` command in flight
  Object.assign(model, { day, loaded: false });
  nextFreeAsk += 1;
  ui.nextFree.classList.add('hidden');
  ui.done.classList.add('hidden');
  ui.prev.disabled = day <= todayIn(model.tz);
  channel = boardChannel(model.providerId);
  ctx.socket?.subscribe(channel, { from: day, to: day }); // replaces the last day's subscription
  render();
  if (focus) ui.day.focus();
}

// ---- live updates (called by app.js for board channels) ----
export function onSnapshot(ch, snapshot, seq) {
  if (ch !== channel) return;
  if (snapshot?.from && snapshot.from !== model.day) return; // an older day's answer
  model.onSnapshot(snapshot, seq); // it supersedes a `board` command in flight
  model.loaded = true;
  render();
  if (!freeSlots().length && model.day >= todayIn(model.tz)) findNextFree();
}

export function onEvent(ch, seq, event) {
  if (ch !== channel || !model.loaded) return;
  if (model.onEvent(seq, event)) render(); // a change of hours fetches a snapshot instead
}

/** The board channel's subscription was refused (e.g. the doctor was removed). */
export function onRefused(ch, err) {
  if (ch !== channel) return false;
  model.loaded = true;
  model.slots = [];
  render();
  text(ui.summary, err.code === 'not_found' ? 'This doctor is no longer available.' : 'Free times cannot be shown.');
  return err.code === 'not_found';
}

/** The directory is read: fills the doctor list and shows the last doctor chosen (or the first). */
export function start(doctors) {
  ui.doctor.replaceChildren(...doctors.map((d) => el('option', { value: d.providerId },
    d.specialization ? `${d.name} · ${d.specialization}` : d.name)));
  ui.doctor.disabled = doctors.length === 0 || !!moving;
  if (!doctors.length) { text(ui.summary, 'No doctors take bookings yet.'); return; }
  const asked = new URLSearchParams(location.search);
  const [doctor, day] = [asked.get('doctor'), asked.get('day')];
  setDoctor(ctx.doctors.has(doctor) ? doctor : doctors[0].providerId, model.day || (isDate(day) ? day : null));
}

/** Forgets everything (signed out). */
export function reset() {
  moving = null; pending = null; channel = null; busy = false;
  model.clear();
  Object.assign(model, { providerId: null, day: null, tz: null, loaded: false });
  ui.slots.replaceChildren(); ui.doctor.replaceChildren();
  for (const n of [ui.confirm, ui.moveBar, ui.nextFree, ui.done]) n.classList.add('hidden');
  for (const n of [ui.title, ui.summary, ui.info]) n.textContent = '';
}

ui.doctor.addEventListener('change', () => setDoctor(ui.doctor.value));
ui.day.addEventListener('change', () => { if (isDate(ui.day.value)) setDay(ui.day.value); });
ui.prev.addEventListener('click', () => model.day && setDay(addDays(model.day, -1)));
ui.next.addEventListener('click', () => model.day && setDay(addDays(model.day, 1)));
ui.confirmBook.addEventListener('click', confirm);
ui.confirmBack.addEventListener('click', () => closeConfirm());
ui.moveCancel.addEventListener('click', () => endMove());
ui.confirm.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeConfirm(); });
$('pick-form').addEventListener('submit', (ev) => ev.preventDefault());
// Slots that begin, and holds that lapse, change what is free without an event.
setInterval(() => { if (model.loaded) render(); }, 30000);
