//! `list`: what a tracker offers, a page at a time ([`ListRequest`] and [`ListReply`]).
//!
//! Files are listed in one order, by name and then by info hash (bytes compared), so that a
//! page is found again from a cursor: the (name, info hash) of the last entry seen. A file
//! added or withdrawn between two pages moves no other entry, as an offset would: every file
//! the tracker holds throughout is listed exactly once across the pages.
//!
//! A reply's entries are fixed [`ListRecord`]s followed by their names, one after another,
//! each as long as its record says; [`decode`](super::decode) checks every name, that the
//! lengths add up to the tail, and that the entries come in strictly increasing order (so a
//! node that follows the cursor always moves forward).

use super::{DecodeError, HASH_BYTES, Hash, Header, Kind, NAME_BYTES_MAX, NodeAuth, U16, U32, U64};
use super::{check_name, records, shape_ok, split};
use bytemuck::{Pod, Zeroable};

/// Most entries one [`ListReply`] carries. A reply is also cut to what the path carries
/// whole (1,232 bytes off loopback: see `tracker::list`), so this bounds only loopback's.
pub const LIST_ENTRIES_MAX: usize = 64;

/// Node → tracker: list the files after (or, with `inclusive`, from) the entry (name,
/// `info_hash`). Tail: the name, empty for the start of the list.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ListRequest {
    pub auth: NodeAuth,
    /// Chosen by the node and echoed in the reply, which tells retries' answers apart.
    pub request_id: U32,
    pub info_hash: Hash,
    /// 1: the page starts at (name, info hash) itself when it is listed (a user's `--from
    /// NAME` sends NAME and a zero info hash); 0: just after it (a cursor from a page).
    pub inclusive: u8,
    /// The most entries wanted, 1 to [`LIST_ENTRIES_MAX`]; 0: as many as fit.
    pub entries_max: u8,
    pub reserved: [u8; 2],
}

/// Tracker → node, fixed part. Tail: `entry_count` [`ListRecord`]s, then their names.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ListReply {
    pub request_id: U32,
    pub entry_count: U16,
    /// 1: more entries follow the last one listed (ask again from it); 0: the list ends.
    pub more: u8,
    pub reserved: u8,
    /// Files the tracker knows in all, under every name.
    pub files_total: U32,
}

/// One file of a [`ListReply`]; its name follows the records, `name_bytes` long.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ListRecord {
    pub info_hash: Hash,
    pub file_bytes: U64,
    pub chunk_bytes: U32,
    /// Nodes that announced some of the file.
    pub holder_count: U32,
    /// Of those, nodes that hold every chunk.
    pub complete_count: U32,
    pub name_bytes: u8,
    pub reserved: [u8; 3],
}

/// Bytes of a [`ListReply`] in front of its records and names.
pub const LIST_REPLY_OVERHEAD_BYTES: usize = size_of::<Header>() + size_of::<ListReply>();

const _: () = {
    assert!(size_of::<ListRequest>() == 40);
    assert!(size_of::<ListReply>() == 12);
    assert!(size_of::<ListRecord>() == 44);
    // A request with a full-length name is a safe control datagram.
    assert!(
        size_of::<Header>() + size_of::<ListRequest>() + NAME_BYTES_MAX
            <= crate::mtu::SAFE_DATAGRAM_BYTES as usize
    );
    // A full page of full-length names fits one datagram.
    assert!(
        LIST_REPLY_OVERHEAD_BYTES + LIST_ENTRIES_MAX * (size_of::<ListRecord>() + NAME_BYTES_MAX)
            <= super::DATAGRAM_BYTES_MAX
    );
    // A page off loopback (a safe control datagram) has room for one full-length entry, so
    // that no page is empty while more follow.
    assert!(
        LIST_REPLY_OVERHEAD_BYTES + size_of::<ListRecord>() + NAME_BYTES_MAX
            <= crate::mtu::SAFE_DATAGRAM_BYTES as usize
    );
    // The number fits its field.
    assert!(LIST_ENTRIES_MAX <= u8::MAX as usize);
    assert!(HASH_BYTES == 20);
};

/// Checks a [`ListRequest`]'s body (after the header).
pub(super) fn decode_request(body: &[u8]) -> Result<(&ListRequest, &str), DecodeError> {
    let kind = Kind::ListRequest;
    let (fixed, name): (&ListRequest, _) = split(body, kind)?;
    if fixed.reserved != [0; 2] {
        return Err(DecodeError::ReservedNotZero);
    }
    if usize::from(fixed.entries_max) > LIST_ENTRIES_MAX {
        return Err(DecodeError::CountOverLimit(kind));
    }
    if fixed.inclusive > 1 {
        return Err(DecodeError::BadShape(kind));
    }
    // An empty name starts the list; any other is a file name.
    let name = if name.is_empty() {
        ""
    } else {
        check_name(name)?
    };
    Ok((fixed, name))
}

/// A checked [`ListReply`]: its fixed part, records and names.
pub(super) type ListReplyParts<'a> = (&'a ListReply, &'a [ListRecord], &'a str);

/// Checks a [`ListReply`]'s body (after the header). Never allocates: the names are walked
/// in place, one record's length at a time.
pub(super) fn decode_reply(body: &[u8]) -> Result<ListReplyParts<'_>, DecodeError> {
    let kind = Kind::ListReply;
    let (fixed, rest): (&ListReply, _) = split(body, kind)?;
    let count = usize::from(fixed.entry_count.get());
    if count > LIST_ENTRIES_MAX {
        return Err(DecodeError::CountOverLimit(kind));
    }
    if fixed.reserved != 0 {
        return Err(DecodeError::ReservedNotZero);
    }
    // "More" after no entry would send a node that follows the cursor round in a circle.
    if fixed.more > 1 || (fixed.more == 1 && count == 0) {
        return Err(DecodeError::BadShape(kind));
    }
    let (list, names) = records::<ListRecord>(rest, count, kind)?;
    if list.iter().any(|r| r.reserved != [0; 3]) {
        return Err(DecodeError::ReservedNotZero);
    }
    let names_bytes: usize = list.iter().map(|r| usize::from(r.name_bytes)).sum();
    if names_bytes != names.len() {
        return Err(DecodeError::LengthMismatch(kind));
    }
    let mut offset = 0;
    let mut previous: Option<(&[u8], &Hash)> = None;
    for record in list {
        let end = offset + usize::from(record.name_bytes);
        let name = names
            .get(offset..end)
            .ok_or(DecodeError::LengthMismatch(kind))?;
        check_name(name)?;
        offset = end;
        let shape = shape_ok(record.file_bytes.get(), record.chunk_bytes.get());
        let key = (name, &record.info_hash);
        let ascending = previous.is_none_or(|previous| previous < key);
        if !shape || record.complete_count.get() > record.holder_count.get() || !ascending {
            return Err(DecodeError::BadShape(kind));
        }
        previous = Some(key);
    }
    // Each name is UTF-8, so the names together are.
    let names = std::str::from_utf8(names).map_err(|_| DecodeError::BadName)?;
    Ok((fixed, list, names))
}

/// The entries of a decoded [`ListReply`]: each record with its name. Names that do not
/// fit (only in a reply [`decode`](super::decode) did not check) end the walk.
pub fn list_entries<'a>(
    records: &'a [ListRecord],
    names: &'a str,
) -> impl Iterator<Item = (&'a ListRecord, &'a str)> + 'a {
    let mut offset = 0;
    records.iter().map_while(move |record| {
        let end = offset + usize::from(record.name_bytes);
        let name = names.get(offset..end)?;
        offset = end;
        Some((record, name))
    })
}

/// A record for a reply, its name's length filled in (`name` passed [`check_name`], so it
/// is at most 255 bytes).
pub fn list_record(
    info_hash: Hash,
    file_bytes: u64,
    chunk_bytes: u32,
    holder_count: u32,
    complete_count: u32,
    name: &str,
) -> ListRecord {
    ListRecord {
        info_hash,
        file_bytes: U64::new(file_bytes),
        chunk_bytes: U32::new(chunk_bytes),
        holder_count: U32::new(holder_count),
        complete_count: U32::new(complete_count),
        name_bytes: u8::try_from(name.len()).unwrap_or(u8::MAX),
        reserved: [0; 3],
    }
}

/// A [`ListReply`]'s fixed part for `entry_count` entries.
pub fn list_reply(request_id: u32, entry_count: usize, more: bool, files_total: u32) -> ListReply {
    ListReply {
        request_id: U32::new(request_id),
        // Fits: at most LIST_ENTRIES_MAX.
        entry_count: U16::new(entry_count.min(LIST_ENTRIES_MAX) as u16),
        more: u8::from(more),
        reserved: 0,
        files_total: U32::new(files_total),
    }
}
