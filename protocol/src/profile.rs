//! Profile shapes shared by the REST contract and the store (seed shapes).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use utoipa::ToSchema;

use crate::ids::{Email, InvalidValue, PatientId};

/// A phone number in E.164 form: `+` then 7 to 15 digits (spaces and dashes
/// are removed before checking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Phone(String);

impl Phone {
    /// Parses a number, dropping spaces and dashes.
    ///
    /// # Errors
    /// [`InvalidValue`] unless it is `+` followed by 7 to 15 digits.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').unwrap_or("");
        if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue(
                "phone must be in E.164 form, e.g. +4930123456".into(),
            ));
        }
        Ok(Self(compact))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How to reach a person (seed `contactInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactInfo {
    /// Phone number (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "+4930123456", pattern = "^\\+[0-9]{7,15}$")]
    pub phone: Option<Phone>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 254, pattern = "^[^@\\s]{1,64}@[^@\\s.]+(\\.[^@\\s.]+)+$")]
    pub email: Option<Email>,
}

/// A postal address (patient-management seed `address`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// Street and number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub street: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub city: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub zip_code: Option<String>,
}

/// A patient's medical history (seed `medicalHistory`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MedicalHistory {
    /// Known allergies.
    #[serde(default)]
    pub allergies: Vec<String>,
    /// Chronic conditions.
    #[serde(default)]
    pub chronic_conditions: Vec<String>,
}

/// A patient's record (`GET /api/patients/{patientId}`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    /// The patient.
    #[schema(value_type = String)]
    pub patient_id: PatientId,
    /// Full name.
    pub name: String,
    /// Date of birth.
    #[schema(value_type = Option<String>)]
    pub dob: Option<jiff::civil::Date>,
    /// Phone and e-mail.
    pub contact_info: ContactInfo,
    /// Allergies and chronic conditions.
    pub medical_history: MedicalHistory,
    /// Postal address, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_e164() {
        assert_eq!(
            Phone::parse("+49 30-123456").unwrap().as_str(),
            "+4930123456"
        );
        for bad in ["4930123456", "+12", "+1234567890123456", "+12a4567"] {
            assert!(Phone::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn contact_info_rejects_unknown_fields() {
        assert!(serde_json::from_str::<ContactInfo>(r#"{"fax":"1"}"#).is_err());
        let c: ContactInfo =
            serde_json::from_str(r#"{"phone":"+1234567890","email":"a@b.org"}"#).unwrap();
        assert_eq!(c.email.unwrap().as_str(), "a@b.org");
    }
}
