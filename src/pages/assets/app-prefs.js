// app-prefs.js: the notification preferences form of the patient page (/app):
// GET / PUT /api/users/me/notification-preferences (src/http/notifications/preferences.rs). The PUT
// replaces the whole document, so fields this form does not show (agendaAt, for doctors) are sent
// back as they were read.

import { api, fieldLabel } from './common.js';
import { $, BROWSER_ZONE, ctx, text } from './app-util.js';

const form = $('preferences');
const ui = { quietOn: $('quiet-on'), quietStart: $('quiet-start'), quietEnd: $('quiet-end'),
  quietFields: $('quiet-fields'), zone: $('pref-zone'), save: $('prefs-save'), status: $('prefs-status') };
let current = null; // the preferences as last read or saved
let saving = false;

const boxes = (name) => [...form.querySelectorAll(`input[name="${name}"]`)];

function zones(selected) {
  let all = [];
  try { all = Intl.supportedValuesOf('timeZone'); } catch { /* an older browser */ }
  const names = [...new Set([...all, 'UTC', BROWSER_ZONE, selected].filter(Boolean))].sort();
  const options = [new Option('The clinic’s time zone', '')];
  if (BROWSER_ZONE) options.push(new Option(`This device’s: ${BROWSER_ZONE}`, BROWSER_ZONE));
  for (const z of names) options.push(new Option(z.replace(/_/g, ' '), z));
  ui.zone.replaceChildren(...options);
  ui.zone.value = selected || '';
}

function fill(p) {
  current = p;
  for (const b of boxes('channel')) b.checked = !!p.channels?.[b.value];
  for (const b of boxes('category')) b.checked = !!p.categories?.[b.value];
  for (const r of boxes('preferred')) r.checked = r.value === (p.preferredChannel || 'email');
  ui.quietOn.checked = !!p.quietHours;
  ui.quietStart.value = p.quietHours?.start || '22:00';
  ui.quietEnd.value = p.quietHours?.end || '07:00';
  zones(p.timeZone || '');
  syncQuiet();
}

function syncQuiet() {
  ui.quietFields.classList.toggle('muted-fields', !ui.quietOn.checked);
  ui.quietStart.disabled = ui.quietEnd.disabled = !ui.quietOn.checked;
}

function read() {
  const flags = (name) => Object.fromEntries(boxes(name).map((b) => [b.value, b.checked]));
  const quiet = ui.quietOn.checked ? { start: ui.quietStart.value.slice(0, 5), end: ui.quietEnd.value.slice(0, 5) } : null;
  return { ...current, channels: flags('channel'), categories: flags('category'), quietHours: quiet,
    timeZone: ui.zone.value || null,
    preferredChannel: boxes('preferred').find((r) => r.checked)?.value || 'email' };
}

function invalid(input, message) {
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  text(ui.status, '');
  ctx.fail(message);
}

async function save(ev) {
  ev.preventDefault();
  if (!current || saving) return;
  for (const n of form.querySelectorAll('[aria-invalid]')) n.removeAttribute('aria-invalid');
  const p = read();
  if (p.quietHours) {
    if (!/^\d\d:\d\d$/.test(p.quietHours.start)) return invalid(ui.quietStart, 'Please give the time quiet hours begin.');
    if (!/^\d\d:\d\d$/.test(p.quietHours.end)) return invalid(ui.quietEnd, 'Please give the time quiet hours end.');
    if (p.quietHours.start === p.quietHours.end) {
      return invalid(ui.quietEnd, 'Quiet hours must end at another time than they begin.');
    }
  }
  saving = true;
  ui.save.disabled = true;
  text(ui.status, 'Saving…');
  try {
    fill(await api('/api/users/me/notification-preferences', { method: 'PUT', body: p }));
    text(ui.status, Object.values(p.channels).some(Boolean) ? 'Saved.' : 'Saved. You will get no reminders.');
  } catch (err) {
    text(ui.status, 'Not saved.');
    const field = err.field && { 'quietHours.start': ui.quietStart, 'quietHours.end': ui.quietEnd,
      quietHours: ui.quietStart, timeZone: ui.zone }[err.field];
    if (field) { field.setAttribute('aria-invalid', 'true'); field.focus(); }
    ctx.fail(err.field && !field ? Object.assign(err, { message: `${fieldLabel(err.field)}: ${err.message}` }) : err);
  } finally { saving = false; ui.save.disabled = false; }
}

/** Reads the preferences into the form. */
export async function load() {
  form.setAttribute('aria-busy', 'true');
  ui.save.disabled = true;
  try {
    fill(await api('/api/users/me/notification-preferences'));
    ui.save.disabled = false;
    text(ui.status, '');
  } catch (err) {
    text(ui.status, 'Your preferences cannot be read right now.');
    ctx.fail(err);
  } finally { form.removeAttribute('aria-busy'); }
}

export function reset() { current = null; text(ui.status, ''); form.reset(); }

form.addEventListener('submit', save);
ui.quietOn.addEventListener('change', syncQuiet);
form.addEventListener('change', () => { if (ui.status.textContent === 'Saved.') text(ui.status, ''); });
