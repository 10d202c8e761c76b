use super::*;
use crate::wire::Hash;
use std::sync::Mutex;

/// A file's bytes in memory, writable, counting flushes.
struct Bytes {
    data: Mutex<Vec<u8>>,
    flushes: Mutex<u32>,
}

impl Bytes {
    fn new(data: &[u8]) -> Arc<Bytes> {
        Arc::new(Bytes {
            data: Mutex::new(data.to_vec()),
            flushes: Mutex::new(0),
        })
    }

    fn data(&self) -> Vec<u8> {
        self.data.lock().unwrap().clone()
    }
}

impl Content for Bytes {
    fn len(&self) -> u64 {
        self.data.lock().unwrap().len() as u64
    }

    fn read_into(&self, offset: u64, out: &mut [u8]) -> bool {
        let data = self.data.lock().unwrap();
        let start = offset as usize;
        match data.get(start..start + out.len()) {
            Some(bytes) if !out.is_empty() => {
                out.copy_from_slice(bytes);
                true
            }
            _ => false,
        }
    }

    fn sha1(&self, offset: u64, len: usize) -> Option<Hash> {
        let data = self.data.lock().unwrap();
        let start = offset as usize;
        data.get(start..start + len).map(crate::hash::sha1)
    }

    fn release(&self, _offset: u64, _len: usize) -> io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }

    fn writer(self: Arc<Self>) -> Box<dyn ContentWriter> {
        Box::new(BytesWriter(self))
    }
}

struct BytesWriter(Arc<Bytes>);

impl ContentWriter for BytesWriter {
    fn write(&mut self, _now: Instant, offset: u64, data: &[u8]) -> bool {
        let mut bytes = self.0.data.lock().unwrap();
        let start = offset as usize;
        match bytes.get_mut(start..start + data.len()) {
            Some(into) => {
                into.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    fn flush(&mut self, _now: Instant) -> bool {
        true
    }
}

/// Files "abcde", an empty one, a pad file of 3 zeros and "fghijkl": 15 bytes in all.
fn tree() -> (Arc<TreeContent>, [Arc<Bytes>; 3]) {
    let (a, empty, b) = (
        Bytes::new(b"abcde"),
        Bytes::new(b""),
        Bytes::new(b"fghijkl"),
    );
    let files: Vec<(u64, Option<Arc<dyn Content>>)> = vec![
        (5, Some(a.clone())),
        (0, Some(empty.clone())),
        (3, None),
        (7, Some(b.clone())),
    ];
    (Arc::new(TreeContent::new(files).unwrap()), [a, empty, b])
}

const WHOLE: &[u8] = b"abcde\0\0\0fghijkl";

#[test]
fn reads_and_hashes_across_files_with_pads_as_zeros() {
    let (content, _) = tree();
    assert_eq!(content.len(), 15);
    for offset in 0..15u64 {
        for len in 1..=(15 - offset as usize) {
            let mut out = vec![0xff; len];
            assert!(content.read_into(offset, &mut out), "{offset}+{len}");
            assert_eq!(out, &WHOLE[offset as usize..offset as usize + len]);
            assert_eq!(
                content.sha1(offset, len),
                Some(crate::hash::sha1(&WHOLE[offset as usize..][..len]))
            );
        }
    }
    assert_eq!(content.sha1(15, 0), Some(crate::hash::sha1(&[])));
}

#[test]
fn a_range_outside_the_tree_is_refused() {
    let (content, _) = tree();
    let mut out = [0u8; 2];
    assert!(!content.read_into(14, &mut out));
    assert!(!content.read_into(u64::MAX, &mut out));
    assert!(!content.read_into(3, &mut []));
    assert_eq!(content.sha1(14, 2), None);
    assert_eq!(content.sha1(16, 0), None);
}

#[test]
fn writes_land_in_each_file_and_never_in_a_pad() {
    let (content, [a, empty, b]) = tree();
    let mut writer = Arc::clone(&content).writer();
    let now = Instant::now();
    assert!(writer.write(now, 3, b"XY\0\0\0ZW"));
    assert!(writer.write(now, 14, b"Q"));
    assert!(!writer.write(now, 14, b"QQ"), "past the end");
    assert!(writer.flush(now));
    assert_eq!(a.data(), b"abcXY");
    assert_eq!(empty.data(), b"");
    assert_eq!(b.data(), b"ZWhijkQ");
    let mut out = [0u8; 15];
    assert!(content.read_into(0, &mut out));
    assert_eq!(&out, b"abcXY\0\0\0ZWhijkQ");
    content.flush().unwrap();
    assert_eq!(*b.flushes.lock().unwrap(), 1);
}

#[test]
fn files_whose_bytes_are_not_their_length_are_refused() {
    let short: Vec<(u64, Option<Arc<dyn Content>>)> = vec![(6, Some(Bytes::new(b"abcde")))];
    assert!(TreeContent::new(short).is_none());
    let overflowing: Vec<(u64, Option<Arc<dyn Content>>)> = vec![(u64::MAX, None), (1, None)];
    assert!(TreeContent::new(overflowing).is_none());
}
