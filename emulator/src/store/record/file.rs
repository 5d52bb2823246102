//! The file records: creation sequence number (8) ‖ content.

use crate::model::FileEntry;

pub(super) fn encode_file(entry: &FileEntry) -> Vec<u8> {
    let mut v = entry.seq.to_be_bytes().to_vec();
    v.extend_from_slice(&entry.data);
    v
}

pub(super) fn decode_file(v: &[u8]) -> Option<FileEntry> {
    let (seq, data) = v.split_at_checked(8)?;
    Some(FileEntry {
        seq: u64::from_be_bytes(seq.try_into().ok()?),
        data: data.to_vec(),
    })
}
