//! Message texts: the configured templates with their `{placeholders}` filled.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use medrelay_actors::billing::notices::{BillingNotice, NoticeKind};
use medrelay_actors::notify::ReminderKind;

use medrelay_actors::accounts::ProviderRecord;
use medrelay_actors::notify::NotificationRecord;
use medrelay_actors::notify::doctors::DoctorNoticeKind;
use medrelay_actors::patients;
use medrelay_actors::schedule::AppointmentRecord;

use crate::config::TemplateSettings;
use crate::ical::{Calendar, Event, Method, Person, Status};

/// What the placeholders stand for.
pub struct Facts<'a> {
    /// `{patient}`
    pub patient: &'a str,
    /// `{doctor}`
    pub doctor: &'a str,
    /// `{appointmentId}`
    pub appointment_id: &'a str,
    /// The appointment's start, shown as `{date}` and `{time}`.
    pub start: Timestamp,
    /// The reader's time zone (`{timeZone}`).
    pub tz: &'a TimeZone,
    /// Free times offered (`{slots}`), shown in the reader's zone.
    pub slots: &'a [Timestamp],
}

/// The subject and body of a reminder or notice.
pub fn compose(
    templates: &TemplateSettings,
    kind: ReminderKind,
    facts: &Facts,
) -> (String, String) {
    let (subject, body) = match kind {
        ReminderKind::Reminder { .. } => (&templates.reminder_subject, &templates.reminder_body),
        ReminderKind::Booked => (&templates.booked_subject, &templates.booked_body),
        ReminderKind::Rescheduled => (&templates.rescheduled_subject, &templates.rescheduled_body),
        ReminderKind::Cancelled => (&templates.cancelled_subject, &templates.cancelled_body),
        ReminderKind::NeedsReschedule => (
            &templates.needs_reschedule_subject,
            &templates.needs_reschedule_body,
        ),
    };
    let values = values(facts);
    let lookup = |name: &str| {
        values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    (render(subject, lookup), render(body, lookup))
}

/// The subject and body of a slot offer from the waitlist: `facts.start`
/// is the slot, `until` when the hold lapses (shown as `{until}`, the
/// reader's time).
pub fn compose_offer(
    templates: &TemplateSettings,
    facts: &Facts,
    until: Timestamp,
) -> (String, String) {
    let values = values(facts);
    let until = until
        .to_zoned(facts.tz.clone())
        .strftime("%H:%M")
        .to_string();
    let lookup = |name: &str| match name {
        "until" => Some(until.as_str()),
        _ => values
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str()),
    };
    (
        render(&templates.offer_subject, lookup),
        render(&templates.offer_body, lookup),
    )
}

/// The subject and body of a billing notice to `patient`, amounts in
/// `currency`.
pub fn compose_billing(
    templates: &TemplateSettings,
    notice: &BillingNotice,
    patient: &str,
    currency: &str,
) -> (String, String) {
    let (subject, body) = match notice.kind {
        NoticeKind::BillIssued => (&templates.bill_issued_subject, &templates.bill_issued_body),
        NoticeKind::Receipt => (&templates.receipt_subject, &templates.receipt_body),
        NoticeKind::PaymentFailed => (
            &templates.payment_failed_subject,
            &templates.payment_failed_body,
        ),
        NoticeKind::Refund => (&templates.refund_subject, &templates.refund_body),
        NoticeKind::ClaimDecided => (
            &templates.claim_decided_subject,
            &templates.claim_decided_body,
        ),
    };
    let amount = notice.amount.to_string();
    let subject_id = notice.subject_id.as_str();
    let bill = match notice.kind {
        NoticeKind::BillIssued => subject_id,
        _ => notice.bill_id.as_deref().unwrap_or(""),
    };
    let status = notice.status.replace('_', " ");
    let lookup = |name: &str| match name {
        "patient" => Some(patient),
        "amount" => Some(amount.as_str()),
        "currency" => Some(currency),
        "billId" => Some(bill),
        "paymentId" | "claimId" => Some(subject_id),
        "status" => Some(status.as_str()),
        _ => None,
    };
    (render(subject, lookup), render(body, lookup))
}

/// What a notice to a doctor says; placeholders a notice does not use are
/// left empty.
#[derive(Default)]
pub struct DoctorFacts<'a> {
    /// `{doctor}`
    pub doctor: &'a str,
    /// `{patient}`
    pub patient: &'a str,
    /// `{when}`: the appointment's start (the new one for a move).
    pub when: String,
    /// `{from}`: the start a move left.
    pub from: String,
    /// `{date}`: an agenda's day.
    pub date: String,
    /// `{appointments}` (one per line) and `{count}`.
    pub lines: Vec<String>,
}

/// The subject and body of a notice to a doctor.
pub fn compose_doctor(
    templates: &TemplateSettings,
    kind: DoctorNoticeKind,
    facts: &DoctorFacts,
) -> (String, String) {
    let t = templates;
    let (subject, body) = match kind {
        DoctorNoticeKind::NeedsReschedule => (
            &t.doctor_needs_reschedule_subject,
            &t.doctor_needs_reschedule_body,
        ),
        DoctorNoticeKind::Booked => (&t.doctor_booked_subject, &t.doctor_booked_body),
        DoctorNoticeKind::Rescheduled => {
            (&t.doctor_rescheduled_subject, &t.doctor_rescheduled_body)
        }
        DoctorNoticeKind::Cancelled => (&t.doctor_cancelled_subject, &t.doctor_cancelled_body),
        DoctorNoticeKind::Agenda => (&t.doctor_agenda_subject, &t.doctor_agenda_body),
    };
    let count = facts.lines.len().to_string();
    let list = if facts.lines.is_empty() {
        "(none)".to_owned()
    } else {
        facts.lines.join("\n")
    };
    let lookup = |name: &str| match name {
        "doctor" => Some(facts.doctor),
        "patient" => Some(facts.patient),
        "when" => Some(facts.when.as_str()),
        "from" => Some(facts.from.as_str()),
        "date" => Some(facts.date.as_str()),
        "count" => Some(count.as_str()),
        "appointments" => Some(list.as_str()),
        _ => None,
    };
    (render(subject, lookup), render(body, lookup))
}

/// Who sends appointment invitations, and where appointments take place.
#[derive(Debug, Clone)]
pub struct Clinic {
    /// The clinic's name (the invitation's organizer).
    pub name: String,
    /// Where appointments take place.
    pub location: String,
    /// The address e-mails come from; invitations name it as organizer.
    pub sender: Option<String>,
}

/// The invitation an e-mail about `appointment` carries: a cancellation
/// for a cancelled one, else a request (new or updated), with the same
/// `UID` and `SEQUENCE` the calendar feeds give it. The attendee is filled
/// in per recipient.
pub fn invitation(
    clinic: &Clinic,
    appointment: &AppointmentRecord,
    doctor: &str,
    zone: &str,
) -> Calendar {
    let event = Event::for_appointment(
        &appointment.into(),
        zone,
        format!("Appointment with {doctor}"),
        Some(clinic.location.clone()),
    );
    let method = match event.status {
        Status::Cancelled => Method::Cancel,
        Status::Confirmed => Method::Request,
    };
    let organizer = clinic.sender.as_ref().map(|email| Person {
        name: clinic.name.clone(),
        email: email.clone(),
    });
    Calendar {
        method: Some(method),
        name: None,
        events: vec![Event { organizer, ..event }],
    }
}

impl super::Notifier {
    /// The invitation an e-mail carries, made now from the appointment as
    /// it is: `None` for a message about no appointment, or when the
    /// appointment changed after the notice fired (the change sends its
    /// own), or cannot be read (the text still goes, without it).
    pub(super) fn invitation(&self, record: &NotificationRecord, to: &str) -> Option<String> {
        let version = record.invitation?;
        let id = record.appointment_id.as_ref()?;
        let made = || -> Result<Option<String>, String> {
            let store = &self.store;
            let text = |e: &dyn std::fmt::Display| e.to_string();
            let Some(appointment) = store
                .get::<AppointmentRecord>(id.as_str())
                .map_err(|e| text(&e))?
            else {
                return Ok(None);
            };
            if u32::try_from(appointment.changes()).ok() != Some(version) {
                return Ok(None);
            }
            let doctor = store
                .get::<ProviderRecord>(appointment.provider_id.as_str())
                .map_err(|e| text(&e))?;
            let (name, zone) = doctor.as_ref().map_or(("your doctor", "UTC"), |d| {
                (d.name.as_str(), d.time_zone.as_str())
            });
            let patient = patients::load(store, &self.vault, &appointment.patient_id)
                .map_err(|e| text(&e))?
                .map_or_else(String::new, |p| p.name);
            let mut calendar = invitation(&self.clinic, &appointment, name, zone);
            for event in &mut calendar.events {
                event.attendee = Some(Person {
                    name: patient.clone(),
                    email: to.to_owned(),
                });
            }
            Ok(Some(calendar.render()))
        };
        made().unwrap_or_else(|e| {
            tracing::warn!(notification = %record.notification_id, error = %e, "sending without its invitation");
            None
        })
    }
}

/// The appointment placeholders and their values.
fn values(facts: &Facts) -> [(&'static str, String); 7] {
    let local = facts.start.to_zoned(facts.tz.clone());
    let date = local.date().to_string();
    let time = local.strftime("%H:%M").to_string();
    let zone = facts.tz.iana_name().unwrap_or("UTC");
    let slots = if facts.slots.is_empty() {
        "none in the next weeks; please contact the clinic".to_owned()
    } else {
        facts
            .slots
            .iter()
            .map(|s| {
                s.to_zoned(facts.tz.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    [
        ("patient", facts.patient.to_owned()),
        ("doctor", facts.doctor.to_owned()),
        ("appointmentId", facts.appointment_id.to_owned()),
        ("date", date),
        ("time", time),
        ("timeZone", zone.to_owned()),
        ("slots", slots),
    ]
}

/// One pass over the template, so a value that itself looks like a
/// placeholder (a patient named `{doctor}`) is never expanded.
fn render<'a>(template: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after
            .find('}')
            .and_then(|close| lookup(&after[..close]).map(|v| (v, close)));
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_in_the_readers_zone() {
        let templates = crate::config::Settings::load_from(None, Vec::new())
            .unwrap()
            .notifications
            .templates;
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let facts = Facts {
            patient: "Ada",
            doctor: "Dr. Who",
            appointment_id: "apt_1",
            start: "2026-07-01T08:30:00Z".parse().unwrap(),
            tz: &tz,
            slots: &[],
        };
        let (subject, body) = compose(
            &templates,
            ReminderKind::Reminder { offset_secs: 7200 },
            &facts,
        );
        assert_eq!(subject, "Appointment reminder");
        assert!(
            body.contains("Dr. Who on 2026-07-01 at 10:30 (Europe/Berlin)"),
            "{body}"
        );
        let offered = ["2026-07-02T07:00:00Z".parse().unwrap()];
        let (_, body) = compose(
            &templates,
            ReminderKind::NeedsReschedule,
            &Facts {
                slots: &offered,
                ..facts
            },
        );
        assert!(body.contains("Free times: 2026-07-02 09:00."), "{body}");
    }
}
