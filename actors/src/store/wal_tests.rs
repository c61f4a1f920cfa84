//! The redo log's records, torn writes and rounds.

use super::*;

fn sample() -> WriteBatch {
    let mut b = WriteBatch::new();
    b.require_absent(Table::ProviderCells, "prov1/0001")
        .require_present(Table::Users, "usr_1");
    b.equal
        .push((Table::RefreshTokens, "rt".into(), vec![0, 1, 255]));
    b.ops.push(Op::Put {
        table: Table::Appointments,
        key: "apt_1".into(),
        value: b"\0\x01{\"a\":1}".to_vec(),
    });
    let rows = vec![("n/d".into(), [(1, 1)].into())];
    b.delete(Table::Reminders, "r/1")
        .ack_outbox(7)
        .set_counter("cursor", 42)
        .audit(vec!["pat_1".into(), "pat_2".into()], b"{}".to_vec())
        .audit(Vec::new(), b"{\"x\":1}".to_vec())
        .reset_stats("a/")
        .tally("a/2026-12-01/prv_1", [(0, 1), (1_036, -2)].into())
        .note_counted(Table::Notifications, "ntf_1", rows)
        .delete_counted(Table::Notifications, "ntf_2")
        .reset_counted()
        .lazy();
    b
}

fn encoded(b: &WriteBatch) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(&mut out, b, None);
    out
}

#[test]
fn a_batch_reads_back_as_written() {
    let b = sample();
    let bytes = encoded(&b);
    let back = decode_batch(&mut Reader(&bytes)).expect("decodes");
    assert_eq!(encoded(&back), bytes);
    assert!(back.lazy);
    assert_eq!(back.ops.len(), 12);
    assert!(matches!(&back.ops[6], Op::ResetStats { prefix } if prefix == "a/"));
    assert!(
        matches!(&back.ops[7], Op::Tally { key, figures } if key == "a/2026-12-01/prv_1" && figures[&1_036] == -2)
    );
    assert!(matches!(&back.ops[4], Op::Audit { patients, .. } if patients == &["pat_1", "pat_2"]));
    assert!(
        matches!(&back.ops[5], Op::Audit { patients, entry } if patients.is_empty() && entry == br#"{"x":1}"#)
    );
}

fn numbers(groups: &[Group]) -> Vec<u64> {
    groups.iter().map(|(n, _)| *n).collect()
}

#[test]
fn a_torn_record_ends_the_log_and_the_groups_before_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb.wal");
    let torn_at = {
        let (mut wal, groups) = Wal::open(&path).unwrap();
        assert!(groups.is_empty());
        wal.append(1, [sample()].iter(), None).unwrap();
        wal.append(2, [sample(), sample()].iter(), None).unwrap();
        wal.sync().unwrap();
        wal.len() - 10
    };
    // The crash hit the second record halfway.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xaa; 10], torn_at).unwrap();
    drop(file);
    let (wal, groups) = Wal::open(&path).unwrap();
    assert_eq!(numbers(&groups), [1]);
    assert_eq!(groups[0].1.len(), 1);
    assert!(wal.len() < torn_at);
}

#[test]
fn after_a_reset_the_new_records_are_read_and_the_older_ones_behind_them_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb.wal");
    let (mut wal, _) = Wal::open(&path).unwrap();
    for n in 1..=5 {
        wal.append(n, [sample(), sample()].iter(), None).unwrap();
    }
    wal.sync().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    // A checkpoint, then a crash before anything new was written: the
    // old round reads back (replay skips it by `wal_applied`).
    wal.reset();
    assert_eq!(wal.len(), 0);
    assert_eq!(numbers(&Wal::open(&path).unwrap().1), [1, 2, 3, 4, 5]);
    // One shorter group written over the start: the stale records after
    // it are misaligned (checksum) or older (number); neither is read.
    wal.append(7, [sample()].iter(), None).unwrap();
    wal.sync().unwrap();
    assert_eq!(numbers(&Wal::open(&path).unwrap().1), [7]);
    // Aligned stale records: same-sized groups over the old ones.
    wal.reset();
    wal.append(8, [sample(), sample()].iter(), None).unwrap();
    wal.append(9, [sample(), sample()].iter(), None).unwrap();
    wal.sync().unwrap();
    assert_eq!(numbers(&Wal::open(&path).unwrap().1), [8, 9]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        size,
        "written over"
    );
}

#[test]
fn the_file_grows_ahead_of_the_records_in_zero_filled_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb.wal");
    let (mut wal, _) = Wal::open(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), INITIAL_SIZE);
    let mut n = 0;
    while wal.len() <= INITIAL_SIZE {
        n += 1;
        wal.append(n, [sample()].iter(), None).unwrap();
    }
    wal.sync().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        INITIAL_SIZE + GROWTH
    );
    let (_, groups) = Wal::open(&path).unwrap();
    assert_eq!(groups.len() as u64, n, "every record, across the step");
}
#[test]
fn after_a_tear_the_next_round_counts_above_the_records_left_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb.wal");
    let torn_at = {
        let (mut wal, _) = Wal::open(&path).unwrap();
        wal.append(1, [sample()].iter(), None).unwrap();
        let torn_at = wal.len() + 20;
        wal.append(2, [sample()].iter(), None).unwrap();
        // The device kept the record after the torn one.
        wal.append(3, [sample()].iter(), None).unwrap();
        wal.sync().unwrap();
        torn_at
    };
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xaa; 4], torn_at).unwrap();
    drop(file);
    let (mut wal, groups) = Wal::open(&path).unwrap();
    assert_eq!(numbers(&groups), [1], "reading stops at the tear");
    let next = wal.next_round(1);
    assert!(next > 3, "group 3 is still in the file behind the tear");
    // A new round over the start: the old group 3 is never read as new.
    wal.reset();
    wal.append(next + 1, [sample(), sample()].iter(), None)
        .unwrap();
    wal.sync().unwrap();
    assert_eq!(numbers(&Wal::open(&path).unwrap().1), [next + 1]);
}

#[test]
fn a_group_taken_back_is_not_read_and_the_next_is_written_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb.wal");
    let (mut wal, _) = Wal::open(&path).unwrap();
    wal.append(1, [sample()].iter(), None).unwrap();
    let second = wal.len();
    wal.append(2, [sample()].iter(), None).unwrap();
    wal.sync().unwrap();
    // Group 2's commit failed after it was logged: it must not come back.
    wal.unwrite(second).unwrap();
    drop(wal);
    let (mut wal, groups) = Wal::open(&path).unwrap();
    assert_eq!(numbers(&groups), [1]);
    assert_eq!(wal.len(), second);
    // The number is given back and used again, over the old record.
    wal.append(2, [sample(), sample()].iter(), None).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, groups) = Wal::open(&path).unwrap();
    assert_eq!(numbers(&groups), [1, 2]);
    assert_eq!(groups[1].1.len(), 2);
}
