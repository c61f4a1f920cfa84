//! The demo clinic: doctors in two time zones with weekday hours, patients
//! who signed up themselves, and a week of appointments they booked, all
//! through the public HTTP API, as a clinic and its patients would.

use anyhow::Context;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::Api;
use super::random::{self, Rng};
use super::session::{Login, Session};

/// One of the demo's doctors.
struct DoctorSpec {
    username: &'static str,
    provider_id: &'static str,
    name: &'static str,
    specialization: &'static str,
    time_zone: &'static str,
    /// Monday to Friday, in `time_zone`.
    hours: [&'static str; 2],
    slot_minutes: u16,
}

const DOCTORS: [DoctorSpec; 4] = [
    DoctorSpec {
        username: "dr.weber",
        provider_id: "dr-weber",
        name: "Dr. Lena Weber",
        specialization: "Cardiology",
        time_zone: "Europe/Berlin",
        hours: ["08:00-12:00", "13:00-16:00"],
        slot_minutes: 30,
    },
    DoctorSpec {
        username: "dr.hoffmann",
        provider_id: "dr-hoffmann",
        name: "Dr. Jonas Hoffmann",
        specialization: "General practice",
        time_zone: "Europe/Berlin",
        hours: ["09:00-13:00", "14:00-18:00"],
        slot_minutes: 20,
    },
    DoctorSpec {
        username: "dr.carter",
        provider_id: "dr-carter",
        name: "Dr. Maya Carter",
        specialization: "Pediatrics",
        time_zone: "America/New_York",
        hours: ["08:30-12:00", "13:00-16:30"],
        slot_minutes: 30,
    },
    DoctorSpec {
        username: "dr.alvarez",
        provider_id: "dr-alvarez",
        name: "Dr. Daniel Alvarez",
        specialization: "Dermatology",
        time_zone: "America/New_York",
        hours: ["10:00-13:00", "14:00-18:00"],
        slot_minutes: 30,
    },
];

const WORKDAYS: [&str; 5] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

/// One of the demo's (fictional) patients.
struct PatientSpec {
    username: &'static str,
    name: &'static str,
    dob: &'static str,
    allergies: &'static [&'static str],
    conditions: &'static [&'static str],
}

const fn patient(
    username: &'static str,
    name: &'static str,
    dob: &'static str,
    allergies: &'static [&'static str],
    conditions: &'static [&'static str],
) -> PatientSpec {
    PatientSpec {
        username,
        name,
        dob,
        allergies,
        conditions,
    }
}

#[rustfmt::skip]
const PATIENTS: [PatientSpec; 10] = [
    patient("anna.schmidt", "Anna Schmidt", "1986-03-14", &["Penicillin"], &[]),
    patient("lukas.becker", "Lukas Becker", "1972-11-02", &[], &["Hypertension"]),
    patient("sofia.rossi", "Sofia Rossi", "1994-07-21", &[], &[]),
    patient("mehmet.yilmaz", "Mehmet Yilmaz", "1965-01-30", &[], &["Type 2 diabetes"]),
    patient("claire.dubois", "Claire Dubois", "1979-08-12", &["Ibuprofen"], &[]),
    patient("emily.johnson", "Emily Johnson", "2001-09-09", &["Peanuts"], &["Asthma"]),
    patient("james.miller", "James Miller", "1958-05-17", &[], &["Atrial fibrillation"]),
    patient("olivia.brown", "Olivia Brown", "2015-12-03", &[], &[]),
    patient("noah.garcia", "Noah Garcia", "1990-04-25", &["Latex"], &[]),
    patient("grace.kim", "Grace Kim", "1983-02-19", &[], &["Hypothyroidism"]),
];

/// Share of a week's free slots the seed books.
const FILL: f64 = 0.45;
/// Patients asked in turn for one slot before it is left free (the first
/// may be booked elsewhere at that time: `patient_conflict`).
const TRIES_PER_SLOT: usize = 2;
/// How long a waiting-room screen's display token works, in hours.
const DISPLAY_TOKEN_HOURS: u32 = 168;

/// A doctor of the demo clinic.
pub(crate) struct Doctor {
    /// Their provider id (the board's).
    pub(crate) provider_id: String,
    /// Full name.
    pub(crate) name: &'static str,
    /// Specialization.
    pub(crate) specialization: &'static str,
    /// IANA name of their time zone.
    pub(crate) time_zone: &'static str,
    /// That zone.
    pub(crate) zone: TimeZone,
    /// Their login.
    pub(crate) login: Login,
    /// A display token for their waiting-room screen.
    pub(crate) display_token: String,
}

/// A patient of the demo clinic, signed in.
pub(crate) struct Patient {
    /// Their patient id.
    pub(crate) patient_id: String,
    /// Full name (printed in the summary only, never logged).
    pub(crate) name: &'static str,
    /// Their session.
    pub(crate) session: Session,
}

/// The seeded clinic.
pub(crate) struct Clinic {
    /// The admin, signed in.
    pub(crate) admin: Session,
    /// The doctors.
    pub(crate) doctors: Vec<Doctor>,
    /// The patients.
    pub(crate) patients: Vec<Patient>,
    /// Appointments booked.
    pub(crate) booked: usize,
    /// Slots chosen for a booking that the rules refused (left free).
    pub(crate) refused: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignupReply {
    #[serde(default)]
    patient_id: Option<String>,
    #[serde(default)]
    provider_id: Option<String>,
}

#[derive(Deserialize)]
struct DisplayTokenReply {
    token: String,
}

/// Seeds the clinic as `admin` (created offline before the server started):
/// doctors, their hours, display tokens, patients, and bookings in the
/// slots of the coming week far enough ahead to book.
///
/// # Errors
/// When a request fails or is refused, other than a booking the rules
/// refuse (that slot is skipped).
pub(crate) async fn seed(api: &Api, admin: Login, rng: &mut Rng) -> anyhow::Result<Clinic> {
    let mut admin = Session::open(api, admin)
        .await
        .context("the demo admin could not sign in")?;
    tracing::info!(
        doctors = DOCTORS.len(),
        "demo: adding doctors and their hours"
    );
    let mut doctors = Vec::with_capacity(DOCTORS.len());
    for spec in &DOCTORS {
        let doctor = add_doctor(api, &mut admin, spec)
            .await
            .with_context(|| format!("could not add the demo doctor {}", spec.username))?;
        doctors.push(doctor);
    }
    tracing::info!(patients = PATIENTS.len(), "demo: signing up patients");
    let mut patients = Vec::with_capacity(PATIENTS.len());
    for spec in &PATIENTS {
        let patient = add_patient(api, spec)
            .await
            .with_context(|| format!("could not sign up the demo patient {}", spec.username))?;
        patients.push(patient);
    }
    tracing::info!("demo: booking a week of appointments");
    let (mut booked, mut refused) = (0, 0);
    for doctor in &doctors {
        let (b, r) = book_week(api, &mut admin, doctor, &mut patients, rng)
            .await
            .with_context(|| format!("could not book {}'s week", doctor.provider_id))?;
        booked += b;
        refused += r;
    }
    tracing::info!(appointments = booked, refused, "demo: clinic seeded");
    Ok(Clinic {
        admin,
        doctors,
        patients,
        booked,
        refused,
    })
}

/// A doctor's account and profile (sign-up by the admin), their weekday
/// hours, and a display token they issue for their waiting room.
async fn add_doctor(api: &Api, admin: &mut Session, spec: &DoctorSpec) -> anyhow::Result<Doctor> {
    let zone = TimeZone::get(spec.time_zone)
        .with_context(|| format!("unknown time zone {}", spec.time_zone))?;
    let (login, email) = new_login(spec.username);
    let body = json!({
        "username": spec.username, "email": email, "password": login.password,
        "role": "doctor", "name": spec.name, "specialization": spec.specialization,
        "timeZone": spec.time_zone, "providerId": spec.provider_id,
        "contactInfo": {"email": email},
    });
    let token = admin.token(api).await?;
    let reply: SignupReply = api.post("/api/auth/signup", Some(token), &body).await?;
    let provider_id = reply
        .provider_id
        .unwrap_or_else(|| spec.provider_id.to_owned());

    let availability: Vec<Value> = WORKDAYS
        .iter()
        .map(|day| json!({"day": day, "slots": spec.hours}))
        .collect();
    let hours = json!({"availability": availability, "slotMinutes": spec.slot_minutes});
    let token = admin.token(api).await?;
    let _: Value = api
        .put(&format!("/api/providers/{provider_id}"), token, &hours)
        .await?;

    // The doctor signs in (which also proves the printed login works) and
    // issues the token of their waiting-room screen.
    let mut session = Session::open(api, login).await?;
    let token = session.token(api).await?;
    let issued: DisplayTokenReply = api
        .post(
            &format!("/api/providers/{provider_id}/display-tokens"),
            Some(token),
            &json!({"ttlHours": DISPLAY_TOKEN_HOURS}),
        )
        .await?;
    Ok(Doctor {
        provider_id,
        name: spec.name,
        specialization: spec.specialization,
        time_zone: spec.time_zone,
        zone,
        login: session.login,
        display_token: issued.token,
    })
}

/// A login with a fresh random password, and its e-mail address.
pub(crate) fn new_login(username: &str) -> (Login, String) {
    let login = Login {
        username: username.to_owned(),
        password: random::password(),
    };
    (login, format!("{username}@example.org"))
}

/// A patient through the open sign-up, then signed in.
async fn add_patient(api: &Api, spec: &PatientSpec) -> anyhow::Result<Patient> {
    let (login, email) = new_login(spec.username);
    let body = json!({
        "username": spec.username, "email": email, "password": login.password,
        "name": spec.name, "dob": spec.dob,
        "contactInfo": {"email": email},
        "medicalHistory": {"allergies": spec.allergies, "chronicConditions": spec.conditions},
    });
    let reply: SignupReply = api.post("/api/auth/signup", None, &body).await?;
    let patient_id = reply
        .patient_id
        .context("sign-up answered without a patientId")?;
    let session = Session::open(api, login).await?;
    Ok(Patient {
        patient_id,
        name: spec.name,
        session,
    })
}

/// Books about `FILL` of `doctor`'s free slots of the week, each by a random
/// patient for themselves. Returns the bookings made and the slots the rules
/// refused to every patient asked (left free).
async fn book_week(
    api: &Api,
    admin: &mut Session,
    doctor: &Doctor,
    patients: &mut [Patient],
    rng: &mut Rng,
) -> anyhow::Result<(usize, usize)> {
    let token = admin.token(api).await?;
    let slots = api
        .upcoming_slots(token, &doctor.provider_id, &doctor.zone)
        .await?;
    let (mut booked, mut refused) = (0, 0);
    for slot in slots.iter().filter(|s| s.is_free()) {
        if !rng.chance(FILL) {
            continue;
        }
        let mut done = false;
        for _ in 0..TRIES_PER_SLOT {
            let count = patients.len();
            let Some(patient) = patients.get_mut(rng.below(count)) else {
                break;
            };
            let token = patient.session.token(api).await?;
            match api
                .book(token, &patient.patient_id, &doctor.provider_id, slot)
                .await
            {
                Ok(_) => {
                    done = true;
                    break;
                }
                Err(e) if e.refusal().is_some() => {}
                Err(e) => return Err(e.into()),
            }
        }
        if done {
            booked += 1;
        } else {
            refused += 1;
        }
    }
    Ok((booked, refused))
}
