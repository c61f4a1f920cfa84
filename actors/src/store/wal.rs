//! The redo log: what makes a group durable without writing its B-tree pages.
//!
//! A group's batches touch a dozen leaves scattered over as many tables (the
//! doctor's and the patient's index and cells, two channels, the reminders),
//! so committing redb durably per group wrote about 30 KiB of pages per
//! booking. Instead the writer commits each group to redb *without* an fsync
//! (redb keeps those pages in memory and rewrites a hot leaf in place), appends
//! the group's batches to this log (about 1 KiB per booking, sequential) and
//! syncs the log before anyone is answered. Every so often a checkpoint (a
//! durable redb commit) makes the log's content redundant and it is emptied.
//!
//! After a crash, redb comes back at its last durable commit, which records
//! the number of the last group it holds (`wal_applied`); [`replay`] applies
//! the logged groups after it, in order. Applying a batch is deterministic
//! given the state before it, so replaying reproduces the very state, event
//! numbers and outbox positions that the lost commits had.
//!
//! Each record is `[len: u32][crc32: u32][body]`, the body being the group
//! number and its batches. A torn record at the end (the crash hit the
//! append) fails its checksum; nobody was answered for it, and the log ends
//! there.
//!
//! The file is written over, not appended to. Syncing an append must also
//! write the file's new size to the journal, which costs a second device write
//! per group (measured here: fdatasync after a 1.5 KiB append p50 160 µs,
//! after overwriting allocated blocks 95–120 µs, and half the p99). So the
//! file is grown in zero-filled 1 MiB steps ahead of the writes, and emptying it
//! after a checkpoint only moves the write position back to the start. The
//! records of earlier rounds stay behind the new ones. Group numbers only
//! grow, so reading stops at the first record that is not newer than the one
//! before it, as it stops at the first that fails its checksum. A stale
//! record that is read anyway (a crash right after a checkpoint) is at or
//! below `wal_applied` and skipped by replay.
//!
//! A crash that tears a record can leave intact records *after* it (the
//! device wrote the pages of one sync out of order); nobody was answered for
//! them, and reading stops before them. So that the next round never reuses
//! their numbers, the writer starts numbering at [`Wal::next_round`], above
//! every number a record in the file can carry.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use medrelay_protocol::{Channel, Event};

use super::batch::{Op, WriteBatch};
use super::tables::Table;
use crate::phi::Vault;

/// The log beside a store file: `<store>.wal`.
pub(super) fn path_for(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// One logged group: its number and its batches, in order.
pub(super) type Group = (u64, Vec<WriteBatch>);

/// The file's size when it is created.
const INITIAL_SIZE: u64 = 256 * 1024;

/// The step the file grows by. Its zeros are flushed by the next group's
/// sync, inside that group's latency: 1 MiB costs about 1-2.5 ms on the
/// development machine, where a 16 MiB step stalled the writer for 30-50 ms.
const GROWTH: u64 = 1024 * 1024;

/// The open log, written by the writer thread only.
pub(super) struct Wal {
    file: File,
    /// Where the next record goes: the bytes of log not yet checkpointed.
    len: u64,
    /// The file's size: zero-filled blocks ready to be written over.
    allocated: u64,
    buf: Vec<u8>,
}

impl Wal {
    /// Opens the log at `path` and returns it with the groups it holds, in
    /// order, up to the first torn, unreadable or stale record; the write
    /// position is after the last group returned.
    pub(super) fn open(path: &Path) -> io::Result<(Wal, Vec<Group>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (groups, at) = read_records(&bytes);
        let mut wal = Wal {
            file,
            len: at as u64,
            allocated: bytes.len() as u64,
            buf: Vec::new(),
        };
        if wal.allocated < INITIAL_SIZE {
            wal.grow(INITIAL_SIZE)?;
            wal.file.sync_all()?;
        }
        Ok((wal, groups))
    }

    /// Bytes of log since the last checkpoint.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The number to count the next round's groups from, after `last` (the
    /// last group replayed or applied). Within a round the logged groups are
    /// numbered one by one (a failed commit gives its number back, and a
    /// checkpoint ends the round), so a record left after a tear carries at
    /// most `last` plus the number of records that fit behind it, which is
    /// less than the file's size in bytes.
    pub(super) fn next_round(&self, last: u64) -> u64 {
        last.saturating_add(self.allocated)
    }

    /// Writes group `seq` (its batches) after the last one, unsynced.
    pub(super) fn append<'a>(
        &mut self,
        seq: u64,
        batches: impl Iterator<Item = &'a WriteBatch>,
        vault: Option<&Vault>,
    ) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 8]);
        put_u64(&mut self.buf, seq);
        for batch in batches {
            encode_batch(&mut self.buf, batch, vault);
        }
        let body = u32::try_from(self.buf.len() - 8)
            .map_err(|_| io::Error::other("a group larger than 4 GiB"))?;
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&body.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let end = self.len + self.buf.len() as u64;
        if end > self.allocated {
            // The sync that follows makes the new size durable with the record.
            self.grow(end.max(self.allocated + GROWTH))?;
        }
        self.file.write_all_at(&self.buf, self.len)?;
        self.len = end;
        Ok(())
    }

    /// Extends the file to `size` with written zeros (not a sparse hole or
    /// an unwritten extent: either would make the first sync of each block
    /// write metadata again).
    fn grow(&mut self, size: u64) -> io::Result<()> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = self.allocated;
        while at < size {
            let n = (size - at).min(ZEROS.len() as u64);
            self.file.write_all_at(&ZEROS[..n as usize], at)?;
            at += n;
        }
        self.allocated = size;
        Ok(())
    }

    /// Makes everything written so far durable.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Another handle on the log file, for a thread that syncs it while
    /// the writer applies the group it holds.
    pub(super) fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Takes back the records from `at` on (a group that did not commit
    /// after it was written, in full or in part): the header at `at` is
    /// zeroed and synced, so reading stops there, and the next record is
    /// written over them.
    pub(super) fn unwrite(&mut self, at: u64) -> io::Result<()> {
        if at + 8 <= self.allocated {
            self.file.write_all_at(&[0; 8], at)?;
            self.file.sync_data()?;
        }
        self.len = at;
        Ok(())
    }

    /// Starts the log over once a durable commit holds everything in it. The
    /// old records stay until written over; replay skips them by number.
    pub(super) fn reset(&mut self) {
        self.len = 0;
    }

    /// Writes zeros over the whole file and syncs it: after a reset, for
    /// old records that must not stay readable (written before the store
    /// sealed events).
    pub(super) fn scrub(&mut self) -> io::Result<()> {
        let size = self.allocated;
        self.allocated = 0;
        self.grow(size)?;
        self.file.sync_data()
    }
}

/// The groups at the start of `bytes`, each newer than the one before, and
/// where they end.
fn read_records(bytes: &[u8]) -> (Vec<Group>, usize) {
    let mut groups: Vec<Group> = Vec::new();
    let mut at = 0usize;
    while let Some((group, next)) = read_record(bytes, at) {
        if groups.last().is_some_and(|(last, _)| group.0 <= *last) {
            break;
        }
        groups.push(group);
        at = next;
    }
    (groups, at)
}

fn read_record(bytes: &[u8], at: usize) -> Option<(Group, usize)> {
    let header = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let body = bytes.get(at + 8..at + 8 + len)?;
    if len < 8 || crc32fast::hash(body) != crc {
        return None;
    }
    let mut r = Reader(body);
    let seq = r.u64()?;
    let mut batches = Vec::new();
    while !r.0.is_empty() {
        batches.push(decode_batch(&mut r)?);
    }
    Some(((seq, batches), at + 8 + len))
}

// The encoding: little-endian integers, u32-length-prefixed strings and
// bytes, a table as its index in `Table::ALL`, an event as its JSON.

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_table(out: &mut Vec<u8>, table: Table) {
    out.push(table.index() as u8);
}

/// Writes an event, its patient text sealed when there is a `vault` (the
/// log is at rest too; see `phi.rs`).
fn put_event(out: &mut Vec<u8>, channel: &Channel, event: &Event, vault: Option<&Vault>) {
    put_bytes(out, channel.name().as_bytes());
    let kept = super::phi::seal(vault, event);
    put_bytes(
        out,
        &serde_json::to_vec(&*kept).expect("events serialise to JSON"),
    );
}

fn encode_batch(out: &mut Vec<u8>, b: &WriteBatch, vault: Option<&Vault>) {
    out.push(u8::from(b.lazy));
    put_len(out, b.absent.len());
    for (table, key) in &b.absent {
        put_table(out, *table);
        put_bytes(out, key.as_bytes());
    }
    put_len(out, b.present.len());
    for (table, key) in &b.present {
        put_table(out, *table);
        put_bytes(out, key.as_bytes());
    }
    put_len(out, b.equal.len());
    for (table, key, value) in &b.equal {
        put_table(out, *table);
        put_bytes(out, key.as_bytes());
        put_bytes(out, value);
    }
    put_len(out, b.ops.len());
    for op in &b.ops {
        match op {
            Op::Put { table, key, value } => {
                out.push(0);
                put_table(out, *table);
                put_bytes(out, key.as_bytes());
                put_bytes(out, value);
            }
            Op::Delete { table, key } => {
                out.push(1);
                put_table(out, *table);
                put_bytes(out, key.as_bytes());
            }
            Op::AckOutbox { through } => {
                out.push(2);
                put_u64(out, *through);
            }
            Op::Counter { name, value } => {
                out.push(3);
                put_bytes(out, name.as_bytes());
                put_u64(out, *value);
            }
            Op::Audit { patients, entry } => {
                out.push(4);
                put_len(out, patients.len());
                for patient in patients {
                    put_bytes(out, patient.as_bytes());
                }
                put_bytes(out, entry);
            }
            Op::Tally { key, figures } => {
                out.push(5);
                put_bytes(out, key.as_bytes());
                put_bytes(out, &super::stats::encode(figures));
            }
            Op::ResetStats { prefix } => {
                out.push(6);
                put_bytes(out, prefix.as_bytes());
            }
            Op::Count {
                table,
                key,
                rows,
                tally,
            } => {
                out.push(7);
                put_table(out, *table);
                put_bytes(out, key.as_bytes());
                put_bytes(out, &super::counted::encode(rows));
                out.push(u8::from(*tally));
            }
            Op::ResetCounted => out.push(8),
        }
    }
    put_len(out, b.events.len());
    for (channel, event) in &b.events {
        put_event(out, channel, event, vault);
    }
    put_len(out, b.replicated.len());
    for (channel, seq, event) in &b.replicated {
        put_u64(out, *seq);
        put_event(out, channel, event, vault);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.len()?;
        self.take(n).map(<[u8]>::to_vec)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }

    fn table(&mut self) -> Option<Table> {
        Table::ALL.get(usize::from(self.u8()?)).copied()
    }

    fn event(&mut self) -> Option<(Channel, Event)> {
        let channel = self.string()?.parse().ok()?;
        let event = serde_json::from_slice(&self.bytes()?).ok()?;
        Some((channel, event))
    }

    fn keys(&mut self) -> Option<Vec<(Table, String)>> {
        (0..self.len()?)
            .map(|_| Some((self.table()?, self.string()?)))
            .collect()
    }
}

fn decode_batch(r: &mut Reader<'_>) -> Option<WriteBatch> {
    let mut b = WriteBatch::new();
    b.lazy = r.u8()? != 0;
    b.absent = r.keys()?;
    b.present = r.keys()?;
    for _ in 0..r.len()? {
        b.equal.push((r.table()?, r.string()?, r.bytes()?));
    }
    for _ in 0..r.len()? {
        let op = match r.u8()? {
            0 => Op::Put {
                table: r.table()?,
                key: r.string()?,
                value: r.bytes()?,
            },
            1 => Op::Delete {
                table: r.table()?,
                key: r.string()?,
            },
            2 => Op::AckOutbox { through: r.u64()? },
            3 => Op::Counter {
                name: r.string()?,
                value: r.u64()?,
            },
            4 => Op::Audit {
                patients: (0..r.len()?).map(|_| r.string()).collect::<Option<_>>()?,
                entry: r.bytes()?,
            },
            5 => Op::Tally {
                key: r.string()?,
                figures: super::stats::decode(&r.bytes()?)?,
            },
            6 => Op::ResetStats {
                prefix: r.string()?,
            },
            7 => Op::Count {
                table: r.table()?,
                key: r.string()?,
                rows: super::counted::decode(&r.bytes()?)?,
                tally: r.u8()? != 0,
            },
            8 => Op::ResetCounted,
            _ => return None,
        };
        b.ops.push(op);
    }
    for _ in 0..r.len()? {
        b.events.push(r.event()?);
    }
    for _ in 0..r.len()? {
        let seq = r.u64()?;
        let (channel, event) = r.event()?;
        b.replicated.push((channel, seq, event));
    }
    Some(b)
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
