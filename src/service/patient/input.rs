//! A patient body (either seed shape) checked and applied to a profile:
//! every field bounded, every refusal naming its field.

use jiff::Timestamp;
use medrelay_actors::patients::PatientRecord;
use medrelay_protocol::patient::PatientBody;
use medrelay_protocol::profile::Address;

use crate::error::AppError;
use crate::service::text;

const MAX_NAME: usize = 200;
const MAX_PART: usize = 100;
const MAX_ITEMS: usize = 100;

/// The name a body gives: `name`, or `firstName` and `lastName`.
pub(super) fn name_of(body: &PatientBody) -> Result<Option<String>, AppError> {
    let part = |field: &str, value: &Option<String>| -> Result<Option<String>, AppError> {
        value
            .as_deref()
            .map(|v| text(field, v, MAX_PART))
            .transpose()
    };
    let (first, last) = (
        part("firstName", &body.first_name)?,
        part("lastName", &body.last_name)?,
    );
    match (&body.name, first, last) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(AppError::invalid(
            "firstName",
            "send either name or firstName and lastName, not both",
        )),
        (Some(name), None, None) => Ok(Some(text("name", name, MAX_NAME)?)),
        (None, Some(first), Some(last)) => Ok(Some(format!("{first} {last}"))),
        (None, Some(_), None) => Err(AppError::invalid(
            "lastName",
            "lastName goes with firstName",
        )),
        (None, None, Some(_)) => Err(AppError::invalid(
            "firstName",
            "firstName goes with lastName",
        )),
        (None, None, None) => Ok(None),
    }
}

/// Applies the body's fields other than the name to `patient`.
pub(super) fn apply(
    patient: &mut PatientRecord,
    body: PatientBody,
    now: Timestamp,
) -> Result<(), AppError> {
    let dob = match (body.dob, body.date_of_birth) {
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "dateOfBirth",
                "send either dob or dateOfBirth, not both",
            ));
        }
        (dob, other) => dob
            .map(|d| ("dob", d))
            .or(other.map(|d| ("dateOfBirth", d))),
    };
    if let Some((field, dob)) = dob {
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        if dob > today {
            return Err(AppError::invalid(field, "must not be in the future"));
        }
        if dob.year() < 1880 {
            return Err(AppError::invalid(field, "must be after 1880"));
        }
        patient.dob = Some(dob);
    }
    if let Some(contact) = body.contact_info {
        if body.phone_number.is_some() && contact.phone.is_some() {
            return Err(AppError::invalid("phoneNumber", "send the phone once"));
        }
        if body.email.is_some() && contact.email.is_some() {
            return Err(AppError::invalid("email", "send the e-mail once"));
        }
        patient.contact_info = contact;
    }
    if let Some(phone) = body.phone_number {
        patient.contact_info.phone = Some(phone);
    }
    if let Some(email) = body.email {
        patient.contact_info.email = Some(email);
    }
    if let Some(address) = body.address {
        patient.address = Some(checked_address(address)?);
    }
    if let Some(history) = body.medical_history {
        for (field, items) in [
            ("medicalHistory.allergies", &history.allergies),
            (
                "medicalHistory.chronicConditions",
                &history.chronic_conditions,
            ),
        ] {
            if items.len() > MAX_ITEMS {
                return Err(AppError::invalid(
                    field,
                    format!("at most {MAX_ITEMS} entries"),
                ));
            }
            for item in items {
                text(field, item, MAX_NAME)?;
            }
        }
        patient.medical_history = history;
    }
    Ok(())
}

fn checked_address(address: Address) -> Result<Address, AppError> {
    for (field, value) in [
        ("address.street", &address.street),
        ("address.city", &address.city),
        ("address.state", &address.state),
        ("address.zipCode", &address.zip_code),
    ] {
        if let Some(value) = value {
            text(field, value, MAX_NAME)?;
        }
    }
    Ok(address)
}
