//! The block the demo prints on stdout once the clinic is seeded: where to
//! look and how to sign in. It is the only place the demo's passwords and
//! patients' names appear (the log never carries them).

use std::io::Write;
use std::path::Path;

use super::seed::Clinic;

/// Patients whose logins the summary prints; the others have logins too,
/// which the traffic uses.
const PRINTED_PATIENTS: usize = 2;

/// Where the demo runs, for the summary.
pub(crate) struct Place<'a> {
    /// `http://host:port`.
    pub(crate) base: &'a str,
    /// The data folder.
    pub(crate) data_dir: &'a Path,
    /// Whether the folder goes when the demo stops.
    pub(crate) temporary: bool,
    /// Whether the traffic runs.
    pub(crate) traffic: bool,
}

/// The summary's text.
pub(crate) fn render(place: &Place<'_>, clinic: &Clinic) -> String {
    let base = place.base;
    let rule = "=".repeat(78);
    let mut lines = vec![
        rule.clone(),
        "  medrelay demo clinic".to_owned(),
        rule.clone(),
        format!("  Server       {base}"),
        format!(
            "  Data folder  {}{}",
            place.data_dir.display(),
            if place.temporary {
                "  (removed when the demo stops)"
            } else {
                ""
            }
        ),
        String::new(),
        "  Pages".to_owned(),
        format!("    Patient app          {base}/app"),
        format!("    Dashboard            {base}/admin"),
        "    Boards (sign in as that doctor or the admin)".to_owned(),
    ];
    for d in &clinic.doctors {
        lines.push(format!(
            "      {:<22} {base}/board/{}",
            d.name, d.provider_id
        ));
    }
    lines.push(
        "    Waiting-room screens (no sign-in: the display token in the link opens the board)"
            .to_owned(),
    );
    for d in &clinic.doctors {
        lines.push(format!(
            "      {:<22} {base}/board/{}#token={}",
            d.name, d.provider_id, d.display_token
        ));
    }
    lines.push(String::new());
    lines.push("  Logins (random passwords for this run, shown only here)".to_owned());
    let admin = &clinic.admin.login;
    lines.push(format!(
        "    admin    {:<16} {}",
        admin.username, admin.password
    ));
    for d in &clinic.doctors {
        lines.push(format!(
            "    doctor   {:<16} {}   {}, {}, {}",
            d.login.username, d.login.password, d.name, d.specialization, d.time_zone
        ));
    }
    for p in clinic.patients.iter().take(PRINTED_PATIENTS) {
        let login = &p.session.login;
        lines.push(format!(
            "    patient  {:<16} {}   {}",
            login.username, login.password, p.name
        ));
    }
    let more = clinic.patients.len().saturating_sub(PRINTED_PATIENTS);
    if more > 0 {
        lines.push(format!(
            "    (and {more} more patients, whose logins the demo keeps to itself)"
        ));
    }
    lines.push(String::new());
    let mut zones: Vec<&str> = clinic.doctors.iter().map(|d| d.time_zone).collect();
    zones.sort_unstable();
    zones.dedup();
    lines.push(format!(
        "  Seeded       {} doctors ({}), {} patients, {} appointments this week",
        clinic.doctors.len(),
        zones.join(", "),
        clinic.patients.len(),
        clinic.booked
    ));
    if clinic.refused > 0 {
        lines.push(format!(
            "               ({} slots the booking rules refused were left free)",
            clinic.refused
        ));
    }
    lines.push(if place.traffic {
        "  Traffic      on: a booking, move or cancellation every 1-3 s".to_owned()
    } else {
        "  Traffic      off (serve --demo --demo-traffic keeps the boards moving)".to_owned()
    });
    lines.push("  Stop with Ctrl-C.".to_owned());
    lines.push(rule);
    lines.join("\n")
}

/// Writes `text` to stdout; a closed stdout is logged, not fatal (the server
/// runs on).
pub(crate) fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{text}");
    if let Err(e) = written.and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "could not print the demo summary");
    }
}
