//! Start-up repair of stores written by releases before doctors' cells.
//!
//! Older releases kept no `provider_cells`, and a no-show kept the
//! patient's cells. This pass gives every appointment that holds its time
//! its doctor's cells and frees the cells of those that do not. It runs
//! once per store (a counter marks it done) and is idempotent if
//! interrupted: a cell already held by the same appointment is left as is.
//!
//! Two appointments that already overlap for one doctor (the defect this
//! repairs) cannot both hold the cells: the one met first keeps them, the
//! other keeps its time, is flagged `needs_reschedule` and is logged, so a
//! person resolves it; nothing is moved or cancelled behind anyone's back.

use std::collections::HashMap;

use super::rules::cells;
use super::{AppointmentRecord, PatientCell, ProviderCell, ScheduleError};
use crate::store::{Store, Table, WriteBatch};

/// The counter that marks the pass done.
const DONE: &str = "migration_provider_cells";

/// Appointments read and written per transaction.
const PAGE: usize = 1_000;

/// What the pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CellRepair {
    /// Appointments that got their doctor's cells.
    pub reserved: usize,
    /// Appointments that overlapped another of their doctor and were flagged.
    pub flagged: usize,
    /// Appointments not holding time whose leftover cells were freed.
    pub freed: usize,
}

/// Runs the pass unless it already ran on this store.
///
/// # Errors
/// A storage error; the pass then runs again at the next start.
pub async fn provider_cells(store: &Store) -> Result<CellRepair, ScheduleError> {
    let mut report = CellRepair::default();
    if store.counter(DONE)? == 1 {
        return Ok(report);
    }
    let mut after: Option<String> = None;
    loop {
        let page = store.scan::<AppointmentRecord>(after.as_deref(), PAGE)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        let mut batch = WriteBatch::new();
        // Cells claimed by this page, not yet committed.
        let mut claimed: HashMap<String, String> = HashMap::new();
        for (_, mut record) in page {
            let id = record.appointment_id.to_string();
            if !record.status.holds_slot() {
                let leftover = release(store, &mut batch, &record)?;
                report.freed += usize::from(leftover);
                continue;
            }
            let keys = cells(record.provider_id.as_str(), &record.slot);
            let mut clash = false;
            for key in &keys {
                let holder = match claimed.get(key) {
                    Some(holder) => Some(holder.clone()),
                    None => store
                        .get::<ProviderCell>(key)?
                        .map(|c| c.appointment_id.to_string()),
                };
                clash |= holder.is_some_and(|h| h != id);
            }
            if clash {
                tracing::warn!(
                    appointment = %id,
                    provider = %record.provider_id,
                    "appointment overlaps another of its doctor; flagged for rescheduling"
                );
                if !record.needs_reschedule {
                    record.needs_reschedule = true;
                    batch.put(id.as_str(), &record);
                }
                report.flagged += 1;
                continue;
            }
            for key in keys {
                batch.put(
                    key.as_str(),
                    &ProviderCell {
                        appointment_id: record.appointment_id.clone(),
                    },
                );
                claimed.insert(key, id.clone());
            }
            report.reserved += 1;
        }
        if !batch.is_empty() {
            store
                .write(batch)
                .await
                .map_err(ScheduleError::from_write)?;
        }
    }
    let mut done = WriteBatch::new();
    done.set_counter(DONE, 1);
    store.write(done).await.map_err(ScheduleError::from_write)?;
    if report != CellRepair::default() {
        tracing::info!(?report, "doctors' cells repaired");
    }
    Ok(report)
}

/// Deletes the cells a record that no longer holds its time still owns;
/// returns whether it had any.
fn release(
    store: &Store,
    batch: &mut WriteBatch,
    record: &AppointmentRecord,
) -> Result<bool, ScheduleError> {
    let mut any = false;
    for key in cells(record.patient_id.as_str(), &record.slot) {
        if store
            .get::<PatientCell>(&key)?
            .is_some_and(|c| c.appointment_id == record.appointment_id)
        {
            batch.delete(Table::PatientCells, key);
            any = true;
        }
    }
    for key in cells(record.provider_id.as_str(), &record.slot) {
        if store
            .get::<ProviderCell>(&key)?
            .is_some_and(|c| c.appointment_id == record.appointment_id)
        {
            batch.delete(Table::ProviderCells, key);
            any = true;
        }
    }
    Ok(any)
}
