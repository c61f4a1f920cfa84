//! The reminder policy, pure: whether a planned reminder still applies, when
//! it may be sent under the patient's quiet hours, in which time zone it is
//! written, and on which channels and to which addresses it goes. The
//! scheduler (`src/delivery/scheduler.rs`) reads the records and writes the
//! outcome; everything it decides in between is here, with its tests.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use medrelay_protocol::notification::{NotificationChannel, NotificationPreferences};
use medrelay_protocol::schedule::AppointmentStatus;

use super::{DeviceRecord, ReminderKind, ReminderRecord};
use crate::accounts::UserRecord;
use crate::patients::PatientRecord;
use crate::schedule::AppointmentRecord;

/// Whether `reminder` no longer applies to `appointment`: a reminder whose
/// appointment moved or ended since it was planned, a confirmation of an
/// appointment that ended, or a request to move an appointment that fits
/// the doctor's hours again.
pub fn is_stale(reminder: &ReminderRecord, appointment: &AppointmentRecord) -> bool {
    match reminder.kind {
        ReminderKind::Reminder { .. } => {
            appointment.status != AppointmentStatus::Scheduled
                || reminder.starts_at != Some(appointment.slot.start)
        }
        ReminderKind::NeedsReschedule => !appointment.needs_reschedule,
        // Confirmations wait for the text channels' pace: one whose
        // appointment ended meanwhile (a cancellation sent its own) goes
        // unsent.
        ReminderKind::Booked => !appointment.status.holds_slot(),
        ReminderKind::Rescheduled | ReminderKind::Cancelled => false,
    }
}

/// The zone a patient's messages are written in: their own, else the
/// doctor's (where the visit happens); `None` leaves it to the clinic's.
pub fn zone_name<'a>(
    prefs: &'a NotificationPreferences,
    doctor_zone: Option<&'a str>,
) -> Option<&'a str> {
    prefs.time_zone.as_deref().or(doctor_zone)
}

/// When a reminder that fell due at `now` should go out instead, because the
/// patient's quiet hours (in `tz`) last until then and that is still before
/// the appointment `starts`. `None`: send now (outside quiet hours, or they
/// end after the appointment begins: a reminder now beats none).
pub fn deferred_past_quiet_hours(
    prefs: &NotificationPreferences,
    tz: &TimeZone,
    now: Timestamp,
    starts: Timestamp,
) -> Option<Timestamp> {
    let quiet = prefs.quiet_hours?;
    let local = now.to_zoned(tz.clone());
    let minute =
        u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
    let left = quiet.minutes_left(minute);
    if left == 0 {
        return None;
    }
    let end = now
        .checked_add(SignedDuration::from_mins(i64::from(left)))
        .ok()?
        .checked_sub(SignedDuration::from_secs(i64::from(local.second())))
        .ok()?;
    (end < starts).then_some(end)
}

/// Where one message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The channel.
    pub channel: NotificationChannel,
    /// The address on it (patient id, device token, e-mail, phone).
    pub recipient: String,
    /// The channels to try, in order, if this one fails for good.
    pub fallback: Vec<NotificationChannel>,
}

/// The messages one notification becomes under the patient's preferences:
/// in-app, one push per device, and one text message on the preferred of
/// e-mail and SMS that has an address (the other as its fallback).
pub fn routes(
    prefs: &NotificationPreferences,
    patient: &PatientRecord,
    user: Option<&UserRecord>,
    devices: &[DeviceRecord],
) -> Vec<Route> {
    let mut routes = Vec::new();
    if prefs.channels.in_app {
        routes.push(Route {
            channel: NotificationChannel::InApp,
            recipient: patient.patient_id.to_string(),
            fallback: Vec::new(),
        });
    }
    if prefs.channels.push {
        routes.extend(devices.iter().map(|device| Route {
            channel: NotificationChannel::Push,
            recipient: device.token.clone(),
            fallback: Vec::new(),
        }));
    }
    let texts: Vec<(NotificationChannel, String)> = prefs
        .text_channels()
        .into_iter()
        .filter(|c| prefs.channels.allows(*c))
        .filter_map(|c| contact(patient, user, c).map(|a| (c, a)))
        .collect();
    if let Some((channel, recipient)) = texts.first() {
        routes.push(Route {
            channel: *channel,
            recipient: recipient.clone(),
            fallback: texts.iter().skip(1).map(|(c, _)| *c).collect(),
        });
    }
    routes
}

/// Where `channel` reaches a patient: their profile's contact details
/// first, their account's e-mail next.
pub fn contact(
    patient: &PatientRecord,
    user: Option<&UserRecord>,
    channel: NotificationChannel,
) -> Option<String> {
    match channel {
        NotificationChannel::Sms => patient
            .contact_info
            .phone
            .as_ref()
            .map(|p| p.as_str().to_owned()),
        NotificationChannel::Email => patient
            .contact_info
            .email
            .as_ref()
            .or(user.map(|u| &u.email))
            .map(|e| e.as_str().to_owned()),
        NotificationChannel::InApp => Some(patient.patient_id.to_string()),
        NotificationChannel::Push => None,
    }
}

#[cfg(test)]
mod tests {
    use medrelay_protocol::notification::QuietHours;
    use medrelay_protocol::profile::{ContactInfo, Phone};
    use medrelay_protocol::schedule::{AppointmentId, ClockTime, SlotTime};
    use medrelay_protocol::{Email, PatientId, ProviderId, Role, UserId, Username};

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn appointment(start: &str) -> AppointmentRecord {
        let start = at(start);
        AppointmentRecord {
            appointment_id: AppointmentId::parse("apt_1").unwrap(),
            provider_id: ProviderId::parse("prv_1").unwrap(),
            patient_id: PatientId::parse("pat_1").unwrap(),
            slot: SlotTime {
                date: start.to_zoned(TimeZone::UTC).date(),
                time_slot: ClockTime::parse("09:00").unwrap(),
                start,
                end: start + SignedDuration::from_mins(30),
            },
            status: AppointmentStatus::Scheduled,
            history: Vec::new(),
            history_dropped: 0,
            reschedules_dropped: 0,
            from_waitlist: false,
            needs_reschedule: false,
        }
    }

    fn reminder(kind: ReminderKind, starts_at: Option<&str>) -> ReminderRecord {
        ReminderRecord {
            appointment_id: AppointmentId::parse("apt_1").unwrap(),
            kind,
            starts_at: starts_at.map(at),
            suggestions: Vec::new(),
        }
    }

    #[test]
    fn a_reminder_for_a_moved_or_ended_appointment_is_stale() {
        let day_before = ReminderKind::Reminder {
            offset_secs: 86_400,
        };
        let planned = reminder(day_before, Some("2026-12-10T09:00:00Z"));
        let mut apt = appointment("2026-12-10T09:00:00Z");
        assert!(!is_stale(&planned, &apt));
        assert!(is_stale(&planned, &appointment("2026-12-10T10:00:00Z")));
        apt.status = AppointmentStatus::Cancelled;
        assert!(is_stale(&planned, &apt));
        // A change notice goes out whatever happened since.
        assert!(!is_stale(&reminder(ReminderKind::Cancelled, None), &apt));
        // Asked to move an appointment that fits the hours again: stale.
        let ask = reminder(ReminderKind::NeedsReschedule, None);
        assert!(is_stale(&ask, &apt));
        apt.needs_reschedule = true;
        assert!(!is_stale(&ask, &apt));
    }

    fn quiet(start: &str, end: &str) -> NotificationPreferences {
        NotificationPreferences {
            quiet_hours: Some(QuietHours {
                start: ClockTime::parse(start).unwrap(),
                end: ClockTime::parse(end).unwrap(),
            }),
            ..NotificationPreferences::default()
        }
    }

    #[test]
    fn quiet_hours_defer_a_reminder_to_their_end_unless_the_visit_starts_first() {
        let prefs = quiet("22:00", "07:00");
        let tz = TimeZone::UTC;
        let now = at("2026-12-09T23:30:15Z");
        assert_eq!(
            deferred_past_quiet_hours(&prefs, &tz, now, at("2026-12-10T09:00:00Z")),
            Some(at("2026-12-10T07:00:00Z"))
        );
        // The quiet hours end after the visit begins: send now.
        assert_eq!(
            deferred_past_quiet_hours(&prefs, &tz, now, at("2026-12-10T06:30:00Z")),
            None
        );
        // Outside them, or with none set: send now.
        let noon = at("2026-12-09T12:00:00Z");
        let later = at("2026-12-10T09:00:00Z");
        assert_eq!(deferred_past_quiet_hours(&prefs, &tz, noon, later), None);
        let none = NotificationPreferences::default();
        assert_eq!(deferred_past_quiet_hours(&none, &tz, now, later), None);
        // Read on the patient's clock: 23:30 UTC is 00:30 in Berlin.
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            deferred_past_quiet_hours(&prefs, &berlin, now, later),
            Some(at("2026-12-10T06:00:00Z"))
        );
    }

    fn patient(phone: Option<&str>, email: Option<&str>) -> PatientRecord {
        PatientRecord {
            patient_id: PatientId::parse("pat_1").unwrap(),
            user_id: None,
            name: "Ada".into(),
            dob: None,
            contact_info: ContactInfo {
                phone: phone.map(|p| Phone::parse(p).unwrap()),
                email: email.map(|e| Email::parse(e).unwrap()),
            },
            address: None,
            medical_history: Default::default(),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: None,
        }
    }

    fn account(email: &str) -> UserRecord {
        UserRecord {
            user_id: UserId::parse("usr_1").unwrap(),
            username: Username::parse("ada").unwrap(),
            email: Email::parse(email).unwrap(),
            password_hash: String::new(),
            role: Role::Patient,
            patient_id: None,
            provider_id: None,
            created_at: at("2026-01-01T00:00:00Z"),
        }
    }

    fn device(token: &str) -> DeviceRecord {
        DeviceRecord {
            token: token.into(),
            platform: super::super::Platform::Android,
            registered_at: at("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn a_notification_goes_in_app_to_every_device_and_by_one_text_channel() {
        let mut prefs = NotificationPreferences {
            preferred_channel: NotificationChannel::Sms,
            ..NotificationPreferences::default()
        };
        let ada = patient(Some("+441234567890"), Some("ada@example.com"));
        let devices = [device("d1"), device("d2")];
        let routes = routes(&prefs, &ada, None, &devices);
        let seen: Vec<_> = routes
            .iter()
            .map(|r| (r.channel, r.recipient.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (NotificationChannel::InApp, "pat_1"),
                (NotificationChannel::Push, "d1"),
                (NotificationChannel::Push, "d2"),
                (NotificationChannel::Sms, "+441234567890"),
            ]
        );
        assert_eq!(routes[3].fallback, [NotificationChannel::Email]);
        // SMS switched off: e-mail alone, with nothing to fall back to.
        prefs.channels.sms = false;
        prefs.channels.push = false;
        let routes = routes_of(&prefs, &ada, None);
        assert_eq!(routes.last().unwrap().channel, NotificationChannel::Email);
        assert!(routes.last().unwrap().fallback.is_empty());
        // No e-mail on the profile: the account's address.
        let no_email = patient(None, None);
        let routes = routes_of(&prefs, &no_email, Some(&account("login@example.com")));
        assert_eq!(routes.last().unwrap().recipient, "login@example.com");
        // Nowhere to write: in-app only.
        assert_eq!(routes_of(&prefs, &no_email, None).len(), 1);
    }

    fn routes_of(
        prefs: &NotificationPreferences,
        patient: &PatientRecord,
        user: Option<&UserRecord>,
    ) -> Vec<Route> {
        routes(prefs, patient, user, &[])
    }
}
