// app-util.js: helpers of the patient page (/app): dates and times in a doctor's zone, keyed list
// updates that keep focus, and the page's shared context. No DOM strings: nodes come from el().
// (Today's date in a zone is common.js's todayIn; slots, overlaps and HOLDING are board-model.js's.)

import { todayIn } from './common.js';

/** What the page's modules share; app.js fills it in. */
export const ctx = {
  socket: null, // the LiveSocket
  session: null, // { user: { userId, username, role, patientId } }
  patientId: null,
  doctors: new Map(), // providerId -> { providerId, name, specialization, timeZone }
  fail: (err) => { throw err; }, // shows an error (or ends the session on `unauthorized`)
  say: () => {}, // shows a short success message
};

export const $ = (id) => document.getElementById(id);
export const BROWSER_ZONE = (() => {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch { return null; }
})();

const formats = new Map();
/** A cached Intl.DateTimeFormat in `zone` (the browser's own when this browser does not know it). */
export function fmt(zone, options) {
  const key = JSON.stringify([zone, options]);
  if (!formats.has(key)) {
    let f;
    try { f = new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone || undefined }); } catch {
      f = new Intl.DateTimeFormat(undefined, options);
    }
    formats.set(key, f);
  }
  return formats.get(key);
}

export const isDate = (s) => /^\d{4}-\d{2}-\d{2}$/.test(s || '') && !Number.isNaN(Date.parse(`${s}T12:00:00Z`));

/** "Monday 7 December" (with the year when it is not this year's). */
export function dayLabel(date, long = true) {
  const year = date.slice(0, 4) !== String(new Date().getFullYear());
  const width = long ? 'long' : 'short';
  return fmt('UTC', { weekday: width, day: 'numeric', month: width, ...(year ? { year: 'numeric' } : {}) })
    .format(Date.parse(`${date}T12:00:00Z`));
}

/** The wall time of an instant in `zone`, "09:30". */
export function clock(ms, zone) {
  return fmt(zone, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ms);
}

/** "(15:30 your time)" when the browser's zone shows another wall time than the doctor's; '' otherwise. */
export function yourTime(ms, zone) {
  if (!zone || !BROWSER_ZONE || zone === BROWSER_ZONE) return '';
  const here = clock(ms, BROWSER_ZONE);
  if (here === clock(ms, zone) && todayIn(zone, ms) === todayIn(BROWSER_ZONE, ms)) return '';
  const day = todayIn(BROWSER_ZONE, ms) === todayIn(zone, ms) ? '' : `${dayLabel(todayIn(BROWSER_ZONE, ms), false)} `;
  return `(${day}${here} your time)`;
}

/** "Dr. Maya Carter" for a provider id (the id itself until the directory is read). */
export const doctorName = (id) => ctx.doctors.get(id)?.name || `Doctor ${id}`;
export const doctorZone = (id) => ctx.doctors.get(id)?.timeZone || null;

/**
 * Makes `container`'s children the nodes for `items`, in order, reusing the node of each key: nodes
 * that stay are never detached, so focus and screen-reader position survive live updates.
 * `make(item)` builds a node; `refresh(node, item)` updates one kept (optional).
 */
export function reconcile(container, items, keyOf, make, refresh) {
  const keep = new Map();
  for (const node of [...container.children]) {
    const key = node.dataset.key;
    if (key != null && !keep.has(key)) keep.set(key, node); else node.remove();
  }
  const wanted = new Set(items.map(keyOf));
  for (const [key, node] of keep) if (!wanted.has(key)) { node.remove(); keep.delete(key); }
  let cursor = container.firstElementChild;
  for (const item of items) {
    const key = keyOf(item);
    let node = keep.get(key);
    if (node) refresh?.(node, item); else { node = make(item); node.dataset.key = key; }
    if (node === cursor) cursor = cursor.nextElementSibling;
    else container.insertBefore(node, cursor);
  }
}

/** Sets a `data-*` / aria attribute only when it changes. */
export function attr(node, name, value) {
  if (value == null || value === false) node.removeAttribute(name);
  else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
}

/** Sets text only when it changes (no needless screen-reader announcements). */
export function text(node, value) { if (node.textContent !== value) node.textContent = value; }
