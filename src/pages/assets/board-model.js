// board-model.js: a doctor's board as the pages keep it (the live board, board.js; the patient's free
// times, app-book.js), from the channel board:<providerId> of the WebSocket.
//
// What the board channel gives (src/service/schedule.rs board_json, the schedule actor's GetBoard): the
// snapshot lists EVERY slot of the doctor's hours, free ones included, for `from`..`to`, each with state
// free/booked/held, appointmentId or holdId, `needsReschedule` on booked slots and `patientId` only for
// the doctor and admins; plus `timeZone`, `slotMinutes` and `needsReschedule` (flagged appointments, which
// may lie outside every slot). Events carry the slot's start/end instants, so the model keeps appointments
// and holds by id and each slot's state is derived from what overlaps it, as the server does.
// `availability_changed` means the slots themselves changed: a fresh snapshot comes with the `board`
// command while staying subscribed; events that arrive meanwhile are logged and those newer than the
// reply's seq are replayed over it.

export const HOLDING = new Set(['Scheduled', 'CheckedIn']); // appointment statuses that keep a slot taken

/** A slot or appointment as the pages keep it, from a board slot, an event's slot or a REST view. */
export function span(t) {
  const start = t.start ?? t.startUtc, end = t.end ?? t.endUtc;
  return { start, end, date: t.date ?? t.appointmentDate, time: t.timeSlot,
    startMs: Date.parse(start), endMs: Date.parse(end) };
}
export const overlaps = (a, b) => a.startMs < b.endMs && b.startMs < a.endMs;

/** The booking notice a snapshot gives (`minNoticeMinutes`), in ms; null when it does not say. */
export function noticeOf(snapshot) {
  const minutes = snapshot?.minNoticeMinutes;
  return typeof minutes === 'number' && Number.isFinite(minutes) && minutes >= 0 ? minutes * 60000 : null;
}

/** Whether a slot starting at `startMs` may still be booked at `now`: it has not begun and, when the
 * notice is known (`noticeMs`, not null), it begins no sooner than that (the server's `too_soon`). */
export const bookable = (startMs, noticeMs, now = Date.now()) => startMs > now
  && (noticeMs == null || startMs >= now + noticeMs);

/**
 * One board: `slots` (sorted by start), `appts` and `holds` by id, `tz`, `from`, `to`, `noticeMs` (null
 * when unknown) and `viewSeq` (the seq the snapshot reflects). Options:
 * - request(): the `board` command's promise ({snapshot, seq}), or null when none can be sent now;
 * - refreshed(data): after the `board` reply `data` and the events replayed over it (repaint);
 * - failed(err): the `board` command failed.
 */
export class BoardModel {
  tz = null; from = null; to = null; noticeMs = null; slots = []; appts = new Map(); holds = new Map();
  viewSeq = 0;
  #refreshing = null; // a `board` command in flight: { log: [events applied meanwhile] }
  #hooks;

  constructor({ request, refreshed = () => {}, failed = () => {} }) {
    this.#hooks = { request, refreshed, failed };
  }

  /** Forgets the board (another doctor or day) and any `board` command in flight. */
  /** What holds `slot` at `now`: an overlapping appointment (`{ appt }`), else an overlapping hold not
   * past its expiry (`{ hold }`: one past it blocks nothing, released or not, since the server writes the
   * release a few seconds late); null when the slot is free. */
  occupant(slot, now = Date.now()) {
    for (const appt of this.appts.values()) if (overlaps(appt, slot)) return { appt };
    for (const hold of this.holds.values()) if (!(hold.expiresMs <= now) && overlaps(hold, slot)) return { hold };
    return null;
  }

  clear() {
    Object.assign(this, { slots: [], viewSeq: 0 });
    this.appts.clear();
    this.holds.clear();
    this.#refreshing = null;
  }

  /** Loads a snapshot (its seq: `seq`). */
  load(snapshot, seq) {
    if (!snapshot || !Array.isArray(snapshot.slots)) throw new Error('the server sent a board without slots');
    const { timeZone, from, to } = snapshot;
    Object.assign(this, { tz: timeZone || this.tz, from, to, noticeMs: noticeOf(snapshot), slots: [], viewSeq: seq });
    this.appts.clear();
    this.holds.clear();
    for (const s of snapshot.slots) {
      const slot = span(s);
      this.slots.push(slot);
      // An appointment longer than today's slot length covers several slots: keep its whole extent.
      const [map, id, extra] = s.appointmentId
        ? [this.appts, s.appointmentId, { patientId: s.patientId, needs: !!s.needsReschedule }]
        : [this.holds, s.holdId, { patientId: s.patientId, expiresMs: Date.parse(s.expiresAt) }];
      if (!id) continue;
      const had = map.get(id);
      if (had) had.endMs = Math.max(had.endMs, slot.endMs); else map.set(id, { ...slot, ...extra });
    }
    for (const a of snapshot.needsReschedule || []) {
      this.appts.set(a.appointmentId, { ...span(a), patientId: a.patientId, needs: true }); // exact extent
    }
    this.slots.sort((a, b) => a.startMs - b.startMs);
  }

  /** Applies one board event; true when the slots themselves changed (fetch a snapshot). */
  apply(e) {
    const slot = e.slot ? span(e.slot) : null;
    const known = this.appts.get(e.appointmentId);
    switch (e.kind) {
      case 'appointment_booked':
        this.appts.set(e.appointmentId, { ...slot, patientId: e.patientId, needs: false }); break;
      case 'appointment_rescheduled': // a move clears needs-reschedule
        this.appts.set(e.appointmentId, { ...span(e.to), patientId: e.patientId, needs: false }); break;
      case 'appointment_cancelled':
        this.appts.delete(e.appointmentId); break;
      case 'appointment_status_changed': // checked in keeps the slot; completed, no-show, cancelled free it
        if (!HOLDING.has(e.status)) this.appts.delete(e.appointmentId);
        else this.appts.set(e.appointmentId, { ...(known || { ...slot, needs: false }), patientId: e.patientId });
        break;
      case 'appointment_needs_reschedule':
        this.appts.set(e.appointmentId, { ...(known || { ...slot, patientId: e.patientId }),
          needs: !!e.needsReschedule });
        break;
      case 'slot_held': case 'offer_made': // an offer to the waitlist is a hold too
        this.holds.set(e.holdId, { ...slot, patientId: e.patientId, expiresMs: Date.parse(e.expiresAt) }); break;
      case 'slot_released': case 'offer_accepted': case 'offer_expired':
        this.holds.delete(e.holdId); break;
      case 'availability_changed':
        return true;
      default: // other kinds do not change slots
    }
    return false;
  }

  /** The subscription's snapshot: it supersedes a `board` command in flight. */
  onSnapshot(snapshot, seq) {
    this.#refreshing = null;
    this.load(snapshot, seq);
  }

  /** An event of the channel: true when it changed the model (repaint); a change of hours fetches a snapshot. */
  onEvent(seq, event) {
    if (this.#refreshing) this.#refreshing.log.push({ seq, event });
    if (seq <= this.viewSeq) return false; // already part of the snapshot shown
    if (!this.apply(event)) return true;
    this.refresh();
    return false;
  }

  /** Fetches a fresh snapshot while staying subscribed; events applied meanwhile are replayed over it. */
  refresh() {
    if (this.#refreshing) return; // the answer replays the later events, and fetches again if one changed hours
    const hooks = this.#hooks;
    const asked = hooks.request();
    if (!asked) return;
    const wait = (this.#refreshing = { log: [] });
    asked.then((data) => {
      if (this.#refreshing !== wait) return; // cleared meanwhile: another doctor or day is shown
      this.#refreshing = null;
      this.load(data.snapshot, data.seq);
      let again = false;
      for (const { seq, event } of wait.log) if (seq > data.seq) again = this.apply(event) || again;
      hooks.refreshed(data);
      if (again) this.refresh();
    }, (err) => {
      if (this.#refreshing !== wait) return;
      this.#refreshing = null;
      hooks.failed(err);
    });
  }
}
