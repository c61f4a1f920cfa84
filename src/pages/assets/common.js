// common.js: shared code of medrelay's pages (board /board/{id}, booking /app, admin /admin): REST calls
// with typed errors, error sentences, the session (sessionStorage only), safe DOM/SVG builders, today's
// date in a zone, a pace for many commands, and LiveSocket, the client of WebSocket protocol v1 (and the
// words for its status). CSP (default-src 'none'; script-src 'self'; style-src 'self'; ...): an ES module
// from /pages/; no inline script, no eval / new Function, no style attributes.
// el() and svg() refuse `style`, `innerHTML` and string `on*` handlers and add text only as text nodes.

const SESSION_KEY = 'medrelay.session';
/** The words for a LiveSocket's status, as the pages show it. */
export const STATUS_WORDS = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…',
  unauthorized: 'Not authorised', closed: 'Not connected' };
export const WS_PROTOCOL = 'medrelay.v1'; // the WebSocket subprotocol
const STATUS_CODES = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found',
  405: 'method_not_allowed', 409: 'conflict', 410: 'gone', 413: 'payload_too_large',
  415: 'unsupported_media_type', 422: 'invalid_field', 429: 'rate_limited' };

/** A failed REST call or WebSocket command, from the server's error body. */
export class ApiError extends Error {
  constructor({ status = 0, code = 'internal', message = '', field = null,
    requestId = null, existingId = null, retryAfter = null } = {}) {
    super(message || code);
    Object.assign(this, { name: 'ApiError', status, code, field, requestId, existingId, retryAfter });
  }
  /** From `{code, message, field, requestId, existingId, retryAfter}` (REST `error`, WS reply `error`). */
  static fromBody(body, status = 0, retryAfter = null) {
    const b = body && typeof body === 'object' ? body : {};
    const code = b.code || STATUS_CODES[status] || (status >= 502 && status <= 504 ? 'unavailable' : 'internal');
    const hint = Number(b.retryAfter); // in a WebSocket reply's body, in seconds, when the server gives one
    return new ApiError({ status, code, message: b.message || '', field: b.field ?? null,
      requestId: b.requestId ?? null, existingId: b.existingId ?? null,
      retryAfter: retryAfter ?? (hint > 0 ? hint : null) });
  }
}

const ymd = new Map(); // zone -> a formatter of yyyy-mm-dd parts
/** Today's date (yyyy-mm-dd) in `zone` at `now`; the browser's own zone when absent or unknown here. */
export function todayIn(zone, now = Date.now()) {
  const key = zone || '';
  if (!ymd.has(key)) {
    const options = { year: 'numeric', month: '2-digit', day: '2-digit' };
    let f;
    try { f = new Intl.DateTimeFormat('en-GB', { ...options, timeZone: zone || undefined }); } catch {
      f = new Intl.DateTimeFormat('en-GB', options); // a zone this browser does not know: its own
    }
    ymd.set(key, f);
  }
  const parts = {};
  for (const p of ymd.get(key).formatToParts(now)) parts[p.type] = p.value;
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** `date` plus `n` days (civil dates: computed at noon UTC, so no zone moves them). */
export function addDays(date, n) {
  return new Date(Date.parse(`${date}T12:00:00Z`) + n * 86400000).toISOString().slice(0, 10);
}

/** Shows a LiveSocket's `status` on `node` (an ended session reads `unauthorized`); the state shown. */
export function showStatus(node, status, words = STATUS_WORDS) {
  const state = status === 'closed-unauthorized' ? 'unauthorized' : status;
  node.setAttribute('data-state', state);
  const label = words[state] || state;
  if (node.textContent !== label) node.textContent = label;
  return state;
}

const network = (message) => new ApiError({ code: 'network', message: message || 'network failure' });

async function send(path, method, body, token, query, signal) {
  const url = new URL(path, location.origin);
  if (url.origin !== location.origin) throw new Error('api(): only same-origin paths are allowed');
  for (const [k, v] of Object.entries(query || {})) {
    for (const one of [].concat(v)) if (one != null) url.searchParams.append(k, String(one));
  }
  const headers = { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  return fetch(url, { method, headers, signal, cache: 'no-store', credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body) })
    .catch((e) => { throw e && e.name === 'AbortError' ? e : network(e && e.message); });
}

async function read(response) {
  const text = await response.text().catch(() => '');
  let data = text;
  try { if (text && /json/.test(response.headers.get('content-type'))) data = JSON.parse(text); } catch { data = null; }
  if (response.ok) return text === '' ? null : data;
  const wait = Number(response.headers.get('retry-after'));
  throw ApiError.fromBody(data && data.error, response.status, wait > 0 ? wait : null);
}

/** Calls the REST API on this origin: the parsed JSON (text for CSV, null when empty), or throws ApiError
 * (`network` when unreachable). `token` left out: the session's, refreshed and retried once after a 401. */
export async function api(path, { method = 'GET', body, token, query, signal } = {}) {
  const session = token === undefined ? loadSession() : null;
  let response = await send(path, method, body, session ? session.accessToken : token, query, signal);
  if (response.status === 401 && session && session.refreshToken) {
    response = await send(path, method, body, (await refresh()).accessToken, query, signal);
  }
  return read(response);
}

const SENTENCES = {
  bad_request: 'The request was not understood by the server.',
  invalid_field: 'A value is not acceptable.',
  unauthorized: 'You are not signed in, or your sign-in has expired. Please sign in again.',
  forbidden: 'You are not allowed to do that.',
  not_found: 'That could not be found; it may have been removed.',
  method_not_allowed: 'That action is not supported here.',
  conflict: 'That clashes with something that already exists.',
  payload_too_large: 'That is too large to send.',
  unsupported_media_type: 'The server could not read what was sent.',
  rate_limited: 'Too many requests at once. Please wait a moment, then try again.',
  locked_out: 'Too many failed sign-ins for this account. Please try again later.',
  token_reused: 'Your session was ended for safety because a sign-in token was used twice. Please sign in again.',
  internal: 'Something went wrong on the server.',
  unavailable: 'The service is busy, starting or stopping. Please try again shortly.',
  resync_required: 'The live view fell behind and is reloading.',
  outside_availability: "That time is outside the doctor's hours or not at the start of a slot.",
  too_soon: 'That slot is in the past or too soon to book.',
  too_far: 'That slot is too far ahead to book yet.',
  slot_taken: 'That slot was just taken by someone else.',
  slot_held: 'That slot is being held for another patient for a few minutes.',
  patient_conflict: 'The patient already has an appointment at that time.',
  invalid_transition: "That change is not possible from the appointment's current status.",
  gone: 'That has been deleted.',
  total_mismatch: 'The total does not match the sum of the services.',
  idempotency_mismatch: 'This repeats an earlier request but with different details.',
  network: 'The server cannot be reached. Please check the connection.',
  timeout: 'The server did not answer in time.',
  bad_credentials: 'The username or password is not right.', // login()'s 401
};

/** `contactInfo.email` → `contact info email`. */
export function fieldLabel(field) {
  return String(field).split('.').map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase()).join(' ');
}

/** A sentence for people about an error: every server code, `network`, `timeout`, anything else. */
export function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong${error && error.message ? `: ${error.message}` : '.'}`;
  let text = SENTENCES[error.code] || error.message || 'Something went wrong.';
  if (['invalid_field', 'bad_request', 'conflict'].includes(error.code)) {
    const detail = (error.message || '').replace(/^[\w.]+:\s*/, '').replace(/\.$/, ''); // less a leading "field: "
    if (error.field && error.code !== 'conflict') text = `Please check the ${fieldLabel(error.field)}.`;
    if (detail) text += ` (${detail})`;
  }
  if (error.retryAfter) text += ` (Wait ${Math.ceil(error.retryAfter)} s.)`;
  if (error.requestId) text += ` If you report it, quote reference ${error.requestId}.`;
  return text;
}

/** Stores the session in sessionStorage (this tab only); takes a login answer's names too. */
export function saveSession({ accessToken, token, refreshToken, expiresAt, expiresIn, user, userId, role } = {}) {
  const session = { accessToken: accessToken || token, refreshToken: refreshToken || null,
    expiresAt: expiresAt || (expiresIn ? Date.now() + expiresIn * 1000 : null),
    user: user || { userId: userId || null, role: role || null } };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session)); return session;
}

/** The session, or null. */
export function loadSession() {
  try { const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null'); return s?.accessToken ? s : null; }
  catch { return null; }
}

/** Forgets the session. */
export function clearSession() { try { sessionStorage.removeItem(SESSION_KEY); } catch { /* nothing kept */ } }

/** Signs in (POST /api/auth/login, then GET /api/auth/me) and saves the session; wrong password: `bad_credentials`. */
export async function login(username, password) {
  const t = await api('/api/auth/login', { method: 'POST', token: null, body: { username, password } }).catch((e) => {
    throw e.code === 'unauthorized' ? Object.assign(e, { code: 'bad_credentials' }) : e;
  });
  const user = await api('/api/auth/me', { token: t.token }).catch(() => ({ userId: t.userId, role: t.role }));
  return saveSession({ accessToken: t.token, refreshToken: t.refreshToken, expiresIn: t.expiresIn, user });
}

let refreshing = null;
/** Rotates the session's tokens (POST /api/auth/refresh), once however many ask at once. */
export function refresh() {
  refreshing = refreshing || (async () => {
    const s = loadSession();
    if (!s || !s.refreshToken) throw new ApiError({ status: 401, code: 'unauthorized', message: 'no session' });
    const t = await api('/api/auth/refresh', { method: 'POST', token: null, body: { refreshToken: s.refreshToken } })
      .catch((e) => { if (e instanceof ApiError && e.status === 401) clearSession(); throw e; }); // refused: sign in again
    return saveSession({ accessToken: t.token, refreshToken: t.refreshToken, expiresIn: t.expiresIn, user: s.user });
  })().finally(() => { refreshing = null; });
  return refreshing;
}

/** Ends the session on the server (best effort) and forgets it here. */
export async function logout() {
  const s = loadSession(); clearSession();
  if (s) await api('/api/auth/logout', { method: 'POST', token: null, body: { token: s.accessToken } }).catch(() => {});
}

const SVG_NS = 'http://www.w3.org/2000/svg';
const FORBIDDEN_ATTRS = new Set(['style', 'innerhtml', 'outerhtml', 'srcdoc']);
const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href']);

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    const name = key === 'className' ? 'class' : key;
    if (FORBIDDEN_ATTRS.has(name.toLowerCase())) throw new Error(`"${key}" is not allowed (CSP): use a class`);
    if (/^on/i.test(name) && typeof value !== 'function') throw new Error(`"${key}" needs a function`);
    if (/^on/i.test(name)) { node.addEventListener(name.slice(2).toLowerCase(), value); continue; }
    const text = Array.isArray(value) ? value.filter(Boolean).join(' ') : value === true ? '' : String(value);
    if (URL_ATTRS.has(name.toLowerCase()) && /^\s*(javascript|vbscript|data):/i.test(text)
      && !/^\s*data:image\//i.test(text)) throw new Error(`unsafe URL in "${key}"`);
    node.setAttribute(name, text);
  }
  for (const c of children.flat(Infinity)) {
    if (c != null && c !== false) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** An HTML element: `el('li', {class: 'slot', 'data-state': 'free', onclick: fn}, 'text', node)`. */
export function el(tag, attrs, ...children) { return build(document.createElement(tag), attrs, children); }
/** An SVG element (createElementNS), same rules as el(). */
export function svg(tag, attrs, ...children) { return build(document.createElementNS(SVG_NS, tag), attrs, children); }

/** Shows `error` (described, or a string) in a banner element; null hides it. */
export function setBanner(banner, error) {
  banner.textContent = error == null ? '' : typeof error === 'string' ? error : describe(error);
  banner.classList.toggle('hidden', error == null);
}

/** A pace for many commands (the server limits a socket's commands per second): the function returned runs
 * `send` (giving a promise, e.g. `() => socket.request(command)`) one every `gapMs` at most; after a
 * `rate_limited` refusal every call waits the reply's retry hint (or a second), and that one is tried once more. */
export function pacer(gapMs) {
  let next = 0;
  const turn = async () => {
    const at = Math.max(Date.now(), next);
    next = at + gapMs;
    if (at > Date.now()) await new Promise((done) => setTimeout(done, at - Date.now()));
  };
  return async (send) => {
    await turn();
    try { return await send(); } catch (err) {
      if (err?.code !== 'rate_limited') throw err;
      next = Math.max(next, Date.now() + (err.retryAfter > 0 ? err.retryAfter * 1000 : 1000));
      await turn();
      return send();
    }
  };
}

const BACKOFF = { startMs: 250, capMs: 5000 }, PING_EVERY_MS = 20000, REPLY_TIMEOUT_MS = 15000;

/** The client of WebSocket protocol v1 (`/ws`, subprotocol medrelay.v1). `token`: a string, or a function
 * (may be async) asked at each connect. `renew`: optional async function giving a fresh token, used a minute
 * before expiry and once after the server refuses the token (close 4001); without it, or when it fails, the
 * socket stops with status `closed-unauthorized`. Callbacks: onStatus(status), onSnapshot(channel, snapshot,
 * seq, {resync}), onEvent(channel, seq, event) once per seq in order, onUnacknowledged(channel, seq, event)
 * for a patient channel's owed notifications, onError(error, {channel}) for refusals. */
export class LiveSocket {
  #token; #renew; #url; #cb; #channels = new Map(); #pending = new Map();
  #ws = null; #authed = false; #stopped = true; #beenLive = false; #status = null;
  #attempt = 0; #nextId = 1; #authFailures = 0; #timers = {};
  constructor({ token, renew = null, url = null, onStatus, onSnapshot, onEvent, onUnacknowledged, onError } = {}) {
    [this.#token, this.#renew] = [token, renew];
    this.#url = url || `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
    this.#cb = { onStatus, onSnapshot, onEvent, onUnacknowledged, onError };
  }
  get status() { return this.#status; }
  /** Subscribes (now, and again after every reconnect); `options`: `from`/`to` for boards. */
  subscribe(channel, options = {}) {
    this.#channels.set(channel, { lastSeq: null, options, pending: false, fresh: true, owed: 0 });
    if (this.#authed) this.#subscribe(this.#ws, channel);
  }
  unsubscribe(channel) {
    this.#channels.delete(channel);
    if (this.#authed) this.request({ type: 'unsubscribe', channel }).catch(() => {});
  }
  /** Drops what is held for `channel` and subscribes again for a fresh snapshot. */
  resync(channel) {
    const st = this.#channels.get(channel);
    if (st) st.fresh = true;
    if (st && this.#authed) this.#subscribe(this.#ws, channel);
  }
  /** Sends a command (e.g. `{type: 'board', providerId}`); resolves with the reply's data, rejects with ApiError. */
  request(command, timeout = REPLY_TIMEOUT_MS) {
    if (!this.#ws || !this.#authed) return Promise.reject(network('not connected'));
    return this.#call(this.#ws, command, timeout);
  }
  /** Connects, and reconnects with backoff until close(). */
  start() {
    if (this.#stopped) { this.#stopped = false; this.#open(); }
  }
  /** Closes for good. */
  close() {
    const ws = this.#ws;
    this.#stopped = true; clearTimeout(this.#timers.retry);
    this.#drop(ws);
    ws?.close(1000, 'closed by the page');
    this.#setStatus('closed');
  }
  #setStatus(status) { if (status !== this.#status) { this.#status = status; this.#emit('onStatus', status); } }
  #emit(name, ...args) { try { this.#cb[name]?.(...args); } catch (e) { if (name !== 'onError') this.#emit('onError', e, {}); } }
  async #open() {
    clearTimeout(this.#timers.retry);
    if (this.#stopped || this.#ws) return;
    this.#setStatus(this.#beenLive ? 'reconnecting' : 'connecting');
    let token = null;
    try { token = typeof this.#token === 'function' ? await this.#token() : this.#token; } catch { /* none */ }
    if (this.#stopped || this.#ws) return;
    if (!token) return this.#unauthorized(new ApiError({ status: 401, code: 'unauthorized', message: 'no token' }));
    let ws;
    try { ws = new WebSocket(this.#url, WS_PROTOCOL); } catch { return this.#retry(); }
    this.#ws = ws;
    // The auth frame goes first: the server closes a socket that does not authenticate within seconds.
    ws.onopen = () => this.#call(ws, { type: 'auth', token }).then((who) => this.#onAuthed(ws, who), (e) => {
      if (ws !== this.#ws) return;
      this.#drop(ws);
      ws.close(1000);
      if (e.code === 'unauthorized' || e.code === 'forbidden') this.#unauthorized(e); else this.#retry();
    });
    ws.onmessage = (m) => { if (ws === this.#ws) this.#onFrame(m.data); };
    ws.onclose = (ev) => {
      if (ws !== this.#ws) return;
      this.#drop(ws);
      // 4001: bad, expired or revoked token. Others (1001 going away, 4008 slow, 4009 heartbeat, 1006): retry.
      if (ev.code === 4001) this.#unauthorized(new ApiError({ status: 401, code: 'unauthorized', message: ev.reason }));
      else this.#retry();
    };
    ws.onerror = () => {}; // a close event follows
  }
  /** Forgets `ws` at once (its close event may come much later). */
  #drop(ws) {
    if (!ws || ws !== this.#ws) return;
    [this.#ws, this.#authed] = [null, false];
    clearInterval(this.#timers.ping);
    clearTimeout(this.#timers.renew);
    this.#channels.forEach((st) => { st.pending = false; });
    this.#pending.forEach((p) => { clearTimeout(p.timer); p.reject(network('connection lost')); });
    this.#pending.clear();
  }
  #retry() {
    if (this.#stopped) return;
    const cap = Math.min(BACKOFF.capMs, BACKOFF.startMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 10);
    this.#setStatus(this.#beenLive ? 'reconnecting' : 'connecting');
    this.#timers.retry = setTimeout(() => this.#open(), cap / 2 + (Math.random() * cap) / 2);
  }
  async #unauthorized(error) {
    if (this.#stopped) return;
    if (this.#renew && this.#authFailures === 0) {
      this.#authFailures += 1; // one renewal per refusal: never loop on a bad token
      const fresh = await Promise.resolve().then(this.#renew).catch(() => null);
      if (fresh && !this.#stopped) {
        if (typeof this.#token !== 'function') this.#token = fresh;
        return this.#open();
      }
    }
    this.#stopped = true;
    this.#setStatus('closed-unauthorized');
    this.#emit('onError', error, {});
  }
  /** Sends a command; its reply settles the promise, or calls `direct` handlers at once (before the next frame). */
  #call(ws, command, timeout = REPLY_TIMEOUT_MS, direct = null) {
    const send = (resolve, reject) => {
      const id = `c${this.#nextId++}`;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ApiError({ code: 'timeout', message: `no reply to ${command.type}` }));
        if (ws === this.#ws) { this.#drop(ws); ws.close(4000, 'no reply'); this.#retry(); }
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer });
      try { ws.send(JSON.stringify({ id, ...command })); } catch {
        clearTimeout(timer); this.#pending.delete(id); reject(network());
      }
    };
    return direct ? send(direct.ok, direct.fail) : new Promise(send);
  }
  #onAuthed(ws, who) {
    if (ws !== this.#ws) return;
    [this.#authed, this.#authFailures] = [true, 0];
    this.#scheduleRenew(ws, who && who.expiresAt);
    // Browsers answer the server's ping frames by themselves; this ping
    // command finds a dead connection that never closed, and reconnects.
    clearInterval(this.#timers.ping);
    this.#timers.ping = setInterval(() => this.#call(ws, { type: 'ping' }, 10000).catch(() => {}), PING_EVERY_MS);
    for (const channel of this.#channels.keys()) this.#subscribe(ws, channel);
    this.#maybeLive();
  }
  #scheduleRenew(ws, expiresAt) {
    clearTimeout(this.#timers.renew);
    const at = Date.parse(expiresAt || '');
    if (!this.#renew || !Number.isFinite(at)) return;
    const wait = Math.min(2 ** 31 - 1, Math.max(5000, at - Date.now() - 60000));
    this.#timers.renew = setTimeout(async () => {
      const fresh = await Promise.resolve().then(this.#renew).catch(() => null);
      if (!fresh || ws !== this.#ws) return; // if it failed, the server closes with 4001 at expiry
      if (typeof this.#token !== 'function') this.#token = fresh;
      this.#call(ws, { type: 'auth', token: fresh }).then((who) => this.#scheduleRenew(ws, who && who.expiresAt), () => {});
    }, wait);
  }
  #subscribe(ws, channel) {
    const st = this.#channels.get(channel);
    if (!st || !ws) return;
    const fresh = st.fresh || st.lastSeq == null;
    // After a reconnect: `since` the last applied seq, so missed events replay once.
    const command = { type: 'subscribe', channel, ...st.options, ...(fresh ? {} : { since: st.lastSeq }) };
    st.pending = true; // events before the reply belong to an older subscription
    this.#call(ws, command, REPLY_TIMEOUT_MS, { ok: (data) => {
      if (this.#channels.get(channel) !== st || ws !== this.#ws) return;
      st.pending = false;
      if (fresh || data.resync || 'snapshot' in data) {
        Object.assign(st, { fresh: false, lastSeq: data.seq, owed: Math.min(data.unacknowledged || 0, 100) });
        this.#emit('onSnapshot', channel, data.snapshot ?? null, data.seq, { resync: !!data.resync });
      }
      this.#maybeLive();
    }, fail: (e) => {
      if (this.#channels.get(channel) !== st || ws !== this.#ws) return;
      st.pending = false;
      const wait = e.retryAfter > 0 ? e.retryAfter * 1000 : 1000; // the reply's retry hint, or a second
      if (e.code === 'rate_limited') return setTimeout(() => this.#subscribe(this.#ws, channel), wait);
      if (e.code !== 'network' && e.code !== 'timeout') this.#emit('onError', e, { channel });
      this.#maybeLive();
    } });
  }
  #maybeLive() {
    if (!this.#authed || [...this.#channels.values()].some((st) => st.pending)) return;
    [this.#attempt, this.#beenLive] = [0, true];
    this.#setStatus('live');
  }
  #onFrame(text) {
    let frame = null;
    try { frame = JSON.parse(text); } catch { /* not a frame of protocol v1 */ }
    if (frame && frame.type === 'event') return this.#onEvent(frame);
    const waiting = frame && frame.re != null && this.#pending.get(frame.re);
    if (waiting) {
      this.#pending.delete(frame.re);
      clearTimeout(waiting.timer);
      if (frame.ok) waiting.resolve(frame.data); else waiting.reject(ApiError.fromBody(frame.error));
    } else if (frame && frame.ok === false && frame.error) {
      const error = ApiError.fromBody(frame.error);
      // A subscription that fell behind has ended: subscribe again from lastSeq.
      if (error.code === 'resync_required' && this.#channels.has(error.field)) this.#subscribe(this.#ws, error.field);
      else this.#emit('onError', error, {});
    }
  }
  #onEvent({ channel, seq, event }) {
    const st = this.#channels.get(channel);
    if (!st || st.pending || st.lastSeq == null || !Number.isInteger(seq)) return;
    if (seq <= st.lastSeq) { // seen already: dropped (a patient channel's owed notifications excepted)
      if (st.owed > 0) { st.owed -= 1; this.#emit('onUnacknowledged', channel, seq, event); }
      return;
    }
    st.owed = 0;
    if (seq > st.lastSeq + 1) return this.resync(channel); // a gap: start again from a snapshot
    st.lastSeq = seq;
    this.#emit('onEvent', channel, seq, event);
  }
}
