// app.js: the patient booking page at /app (page app.html). A patient signs in (or creates an account,
// optionally with the clinic's invitation code), picks a doctor and a day and sees that day's free
// times live (app-book.js), books one or moves an appointment there, sees their upcoming appointments
// and their reminders and notices as they arrive (app-mine.js), and sets how they are reached
// (app-prefs.js). Helpers shared by these modules are in app-util.js.
//
// One LiveSocket carries two subscriptions: the patient's own channel `patient:<patientId>` (their
// appointment events and in-app notifications) and the board of the doctor shown, `board:<providerId>`,
// for the day shown. The session lives in sessionStorage through common.js only. CSP: modules from
// /pages/, no inline script or style, no style attributes; DOM built with el() (text as text nodes).

import { api, ApiError, clearSession, describe, login, loadSession, logout, refresh, saveSession,
  setBanner, showStatus, LiveSocket, STATUS_WORDS as SOCKET_WORDS } from './common.js';
import { $, ctx, text } from './app-util.js';
import * as book from './app-book.js';
import * as mine from './app-mine.js';
import * as prefs from './app-prefs.js';

const STATUS_WORDS = { ...SOCKET_WORDS, unauthorized: 'Signed out' }; // the socket's words; an ended session: signed out
const ui = { banner: $('banner'), notice: $('notice'), status: $('status'), who: $('who'), whoName: $('who-name'),
  logout: $('logout'), auth: $('auth'), app: $('app'), main: $('main'),
  loginForm: $('login-form'), username: $('login-username'), password: $('login-password'),
  signupForm: $('signup-form'), invited: $('signup-invited'), invite: $('signup-invite'),
  inviteFields: $('signup-invite-fields'), profileFields: $('signup-profile-fields') };
let noticeTimer = null;

ctx.mine = mine;
ctx.fail = fail;
ctx.say = say;

// ---- messages ----
/** Shows an error (ApiError, Error or a sentence) in the banner; an ended session goes back to sign-in. */
function fail(err) {
  if (err instanceof ApiError && (err.code === 'unauthorized' || err.code === 'token_reused') && ctx.session) {
    return signedOut(describe(err));
  }
  say(null);
  setBanner(ui.banner, err);
}

/** A short success message (role=status); null hides it. Clears an earlier error. */
function say(message) {
  clearTimeout(noticeTimer);
  if (message) setBanner(ui.banner, null);
  ui.notice.textContent = message || '';
  ui.notice.classList.toggle('hidden', !message);
  if (message) noticeTimer = setTimeout(() => say(null), 12000);
}

function setStatus(status) {
  const state = showStatus(ui.status, status, STATUS_WORDS);
  document.body.classList.toggle('stale', !!ctx.session && state !== 'live');
  return state;
}

// ---- signing in and out ----
function showAuth(which = 'login') {
  ui.app.classList.add('hidden');
  ui.who.classList.add('hidden');
  ui.auth.classList.remove('hidden');
  ui.status.classList.add('hidden'); // no connection to speak of before signing in
  ui.loginForm.classList.toggle('hidden', which !== 'login');
  ui.signupForm.classList.toggle('hidden', which !== 'signup');
  setStatus('closed');
  document.title = which === 'login' ? 'Sign in · medrelay' : 'Create an account · medrelay';
  (which === 'login' ? ui.username : $('signup-username')).focus();
}

function clearInvalid(form) { for (const n of form.querySelectorAll('[aria-invalid]')) n.removeAttribute('aria-invalid'); }

/** Marks the first invalid input of `form` and says which; false when there is none. */
function checkForm(form) {
  clearInvalid(form);
  const bad = [...form.querySelectorAll('input, select')].find((n) => !n.disabled && !n.closest('.hidden')
    && !n.checkValidity());
  if (!bad) return false;
  bad.setAttribute('aria-invalid', 'true');
  bad.focus();
  const label = form.querySelector(`label[for="${bad.id}"]`)?.firstChild?.textContent.trim().toLowerCase() || bad.name;
  const hint = bad.getAttribute('aria-describedby') && $(bad.getAttribute('aria-describedby'))?.textContent;
  fail(bad.validity.valueMissing ? `Please enter your ${label}.` : `Please check the ${label}.${hint ? ` ${hint}` : ''}`);
  return true;
}

/** Marks the input an API error names (`field`), in `form`. */
function markField(form, err) {
  if (!(err instanceof ApiError) || !err.field) return;
  const names = { 'contactInfo.phone': 'phone', 'contactInfo.email': 'email' };
  const input = form.querySelector(`[name="${CSS.escape(names[err.field] || err.field)}"]`);
  if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
}

async function onLogin(ev) {
  ev.preventDefault();
  clearInvalid(ui.loginForm);
  const username = ui.username.value.trim(), password = ui.password.value;
  if (!username || !password) {
    const missing = username ? ui.password : ui.username;
    missing.setAttribute('aria-invalid', 'true');
    missing.focus();
    return fail(`Please enter your ${username ? 'password' : 'username'}.`);
  }
  await submitting(ui.loginForm, async () => {
    try {
      await login(username, password);
    } catch (err) {
      if (err.code === 'bad_credentials') { ui.password.setAttribute('aria-invalid', 'true'); ui.password.select(); }
      throw err;
    }
    ui.password.value = '';
    await start();
  });
}

async function onSignup(ev) {
  ev.preventDefault();
  if (checkForm(ui.signupForm)) return;
  const v = (id) => $(id).value.trim();
  const body = { username: v('signup-username'), email: v('signup-email'), password: $('signup-password').value };
  if (ui.invited.checked) {
    if (!v('signup-invite')) { ui.invite.setAttribute('aria-invalid', 'true'); ui.invite.focus(); return fail('Please enter your invitation code.'); }
    body.inviteToken = v('signup-invite');
  } else {
    body.name = v('signup-name');
    if (v('signup-dob')) body.dob = v('signup-dob');
    if (v('signup-phone')) body.contactInfo = { phone: v('signup-phone') };
  }
  await submitting(ui.signupForm, async () => {
    try {
      await api('/api/auth/signup', { method: 'POST', token: null, body });
    } catch (err) {
      markField(ui.signupForm, err);
      if (err.code === 'conflict' && !err.field) err.message ||= 'that username or e-mail is already registered';
      throw err;
    }
    await login(body.username, body.password);
    ui.signupForm.reset();
    syncInvite();
    await start();
    say('Welcome! Your account is ready. Pick a doctor and a day to book your first appointment.');
  });
}

/** Runs `work` with the form's buttons disabled; its error goes to the banner. */
async function submitting(form, work) {
  const buttons = [...form.querySelectorAll('button')];
  buttons.forEach((b) => { b.disabled = true; });
  form.setAttribute('aria-busy', 'true');
  setBanner(ui.banner, null);
  try { await work(); } catch (err) { fail(err); } finally {
    buttons.forEach((b) => { b.disabled = false; });
    form.removeAttribute('aria-busy');
  }
}

function syncInvite() {
  ui.inviteFields.classList.toggle('hidden', !ui.invited.checked);
  ui.profileFields.classList.toggle('hidden', ui.invited.checked);
  $('signup-name').required = !ui.invited.checked;
}

/** The session ended (signed out here, expired, or revoked): back to the sign-in form. */
function signedOut(message = null) {
  ctx.socket?.close();
  ctx.socket = null;
  ctx.session = null;
  ctx.patientId = null;
  ctx.doctors = new Map();
  clearSession();
  book.reset(); mine.reset(); prefs.reset();
  showAuth('login');
  setBanner(ui.banner, message);
}

// ---- the signed-in page ----
async function start() {
  let session = loadSession();
  if (!session) return showAuth('login');
  if (!session.user?.role || !('patientId' in session.user)) { // an older session without the account's details
    const user = await api('/api/auth/me');
    session = saveSession({ ...session, user });
  }
  const { user } = session;
  if (user.role !== 'patient' || !user.patientId) {
    const where = user.role === 'doctor' && user.providerId ? `your board at /board/${user.providerId}` : 'the dashboard at /admin';
    await logout();
    showAuth('login');
    return fail(`This page is for patients, and ${user.username || 'this account'} is ${user.role === 'admin' ? 'an admin' : `a ${user.role}`}'s `
      + `account. Please use ${where}.`);
  }
  ctx.session = session;
  ctx.patientId = user.patientId;
  text(ui.whoName, `Signed in as ${user.username || 'patient'}`);
  ui.auth.classList.add('hidden');
  ui.who.classList.remove('hidden');
  ui.status.classList.remove('hidden');
  ui.app.classList.remove('hidden');
  document.title = 'Book an appointment · medrelay';
  setBanner(ui.banner, null);

  ctx.socket?.close();
  ctx.socket = new LiveSocket({
    token: () => loadSession()?.accessToken,
    renew: async () => (await refresh()).accessToken,
    onStatus, onSnapshot, onEvent, onUnacknowledged: mine.onUnacknowledged, onError: onSocketError,
  });
  ctx.socket.subscribe(`patient:${ctx.patientId}`);
  ctx.socket.start();
  prefs.load();
  mine.refreshList(); // read again with the channel's snapshot; this one shows the list without the socket
  await loadDoctors();
}

/** The directory, every page of it. */
let readingDoctors = false;
async function loadDoctors() {
  if (readingDoctors) return;
  readingDoctors = true;
  const all = [];
  let after = null;
  try {
    for (let page = 0; page < 20; page += 1) {
      const data = await api('/api/doctors', { query: { limit: 500, after } });
      all.push(...(data.doctors || []));
      if (!data.nextAfter) break;
      after = data.nextAfter;
    }
  } catch (err) {
    fail(err);
    if (!all.length) return; // tried again once the socket is live
  } finally { readingDoctors = false; }
  if (!ctx.session) return;
  all.sort((a, b) => a.name.localeCompare(b.name));
  ctx.doctors = new Map(all.map((d) => [d.providerId, d]));
  book.start(all);
  mine.repaint();
}

function onStatus(status) {
  const state = setStatus(status);
  if (state === 'live') {
    mine.onLive();
    if (!ctx.doctors.size) loadDoctors();
  }
  if (state === 'unauthorized' && ctx.session) signedOut('Your sign-in has ended. Please sign in again.');
}

function onSnapshot(channel, snapshot, seq, info) {
  if (channel.startsWith('board:')) book.onSnapshot(channel, snapshot, seq, info);
  else if (channel === `patient:${ctx.patientId}`) mine.onSnapshot(channel, snapshot, seq, info);
}

function onEvent(channel, seq, event) {
  if (channel.startsWith('board:')) book.onEvent(channel, seq, event);
  else if (channel === `patient:${ctx.patientId}`) mine.onEvent(channel, seq, event);
}

function onSocketError(err, { channel } = {}) {
  if (err?.code === 'unauthorized') return; // onStatus says so
  if (channel && channel.startsWith('board:')) {
    book.onRefused(channel, err);
    if (err.code === 'not_found') return fail('That doctor is no longer available. Please choose another.');
  }
  fail(err);
}

// ---- wiring ----
ui.loginForm.addEventListener('submit', onLogin);
ui.signupForm.addEventListener('submit', onSignup);
$('show-signup').addEventListener('click', () => { setBanner(ui.banner, null); showAuth('signup'); });
$('show-login').addEventListener('click', () => { setBanner(ui.banner, null); showAuth('login'); });
ui.invited.addEventListener('change', syncInvite);
for (const form of [ui.loginForm, ui.signupForm]) {
  form.addEventListener('input', (ev) => ev.target.removeAttribute?.('aria-invalid'));
}
ui.logout.addEventListener('click', async () => {
  ui.logout.disabled = true;
  ctx.socket?.close();
  await logout();
  ui.logout.disabled = false;
  signedOut(null);
  say('You are signed out.');
});
addEventListener('unhandledrejection', (ev) => fail(ev.reason ?? new Error('an unexpected failure')));

// An invitation link (/app#invite=CODE) opens the sign-up form with the code filled in; the code leaves
// the address bar and the history at once.
const invite = new URLSearchParams(location.hash.slice(1)).get('invite');
if (invite) history.replaceState(null, '', location.pathname + location.search);
if (loadSession()) {
  start().catch((err) => { if (ctx.session || !(err instanceof ApiError && err.status === 401)) fail(err); else signedOut(describe(err)); });
} else if (invite) {
  ui.invited.checked = true;
  ui.invite.value = invite.slice(0, 128);
  syncInvite();
  showAuth('signup');
} else {
  showAuth('login');
}
