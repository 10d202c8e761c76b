//! Where each piece of a tree lies: BitTorrent v1 lays a tree's files end to end, in the
//! order of its file list, and cuts that one stream of bytes into pieces, so a piece may
//! span the end of one file and the start of the next (or several small ones). A file of
//! zero length takes no bytes of the stream, hence no part of any piece.

use std::ops::Range;

/// The file list's lengths laid end to end and cut into pieces of `piece_bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceLayout {
    /// Where each file ends in the stream (exclusive): a running sum of the lengths, so
    /// file `i` is `ends[i - 1]..ends[i]` (from 0 for the first).
    ends: Vec<u64>,
    piece_bytes: u32,
}

/// One file's part of a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The file's index in the file list.
    pub file: usize,
    /// Where in the file the part starts.
    pub offset_bytes: u64,
    /// At most a piece.
    pub len_bytes: u32,
}

impl PieceLayout {
    /// Lays out files of these lengths; `None` when their sum overflows a `u64`, or
    /// `piece_bytes` is 0. The caller bounds the file count (the list is allocated here) and
    /// checks the shape (how many pieces that makes).
    pub fn new(lengths: impl ExactSizeIterator<Item = u64>, piece_bytes: u32) -> Option<Self> {
        if piece_bytes == 0 {
            return None;
        }
        let mut ends = Vec::with_capacity(lengths.len());
        let mut total_bytes = 0u64;
        for len in lengths {
            total_bytes = total_bytes.checked_add(len)?;
            ends.push(total_bytes);
        }
        Some(PieceLayout { ends, piece_bytes })
    }

    /// Lays out one more file after the others (a walk finds them one at a time); `None`
    /// when the sum would overflow a `u64`.
    pub fn push(&mut self, length_bytes: u64) -> Option<()> {
        self.ends
            .push(self.total_bytes().checked_add(length_bytes)?);
        Some(())
    }

    /// The length of the whole stream: every file's bytes.
    pub fn total_bytes(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    pub fn piece_bytes(&self) -> u32 {
        self.piece_bytes
    }

    /// How many files were laid out, those of zero length included.
    pub fn file_count(&self) -> usize {
        self.ends.len()
    }

    /// How many pieces the stream makes (the last may be short).
    pub fn piece_count(&self) -> u64 {
        self.total_bytes().div_ceil(u64::from(self.piece_bytes))
    }

    /// Where piece `piece` lies in the stream: empty past the end.
    pub fn piece_range(&self, piece: u64) -> Range<u64> {
        let total = self.total_bytes();
        let start = piece.saturating_mul(u64::from(self.piece_bytes)).min(total);
        start..start.saturating_add(u64::from(self.piece_bytes)).min(total)
    }

    /// Where file `file` lies in the stream (empty for a file of zero length, or past the
    /// list's end).
    pub fn file_range(&self, file: usize) -> Range<u64> {
        let Some(&end) = self.ends.get(file) else {
            return self.total_bytes()..self.total_bytes();
        };
        let start = match file.checked_sub(1) {
            Some(before) => self.ends[before],
            None => 0,
        };
        start..end
    }

    /// The pieces file `file` has bytes in: empty for a file of zero length.
    pub fn file_pieces(&self, file: usize) -> Range<u64> {
        let bytes = self.file_range(file);
        if bytes.is_empty() {
            return 0..0;
        }
        let piece_bytes = u64::from(self.piece_bytes);
        bytes.start / piece_bytes..bytes.end.div_ceil(piece_bytes)
    }

    /// The parts of the files that piece `piece` is made of, in order; nothing past the
    /// last piece.
    pub fn spans(&self, piece: u64) -> Spans<'_> {
        let range = self.piece_range(piece);
        // The first file that ends after the piece starts; files of zero length before it
        // (and inside it, below) are stepped over.
        let file = self.ends.partition_point(|&end| end <= range.start);
        Spans {
            layout: self,
            file,
            at: range.start,
            end: range.end,
        }
    }
}

/// The [`Span`]s of one piece.
#[derive(Clone, Debug)]
pub struct Spans<'a> {
    layout: &'a PieceLayout,
    file: usize,
    at: u64,
    end: u64,
}

impl Iterator for Spans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        while self.at < self.end {
            let bytes = self.layout.file_range(self.file);
            if bytes.is_empty() {
                // A file of zero length, or (impossible while at < end) past the list.
                if self.file >= self.layout.ends.len() {
                    return None;
                }
                self.file += 1;
                continue;
            }
            let until = bytes.end.min(self.end);
            let span = Span {
                file: self.file,
                offset_bytes: self.at - bytes.start,
                // At most the piece's length, which is a u32.
                len_bytes: (until - self.at) as u32,
            };
            self.at = until;
            self.file += 1;
            return Some(span);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(layout: &PieceLayout, piece: u64) -> Vec<(usize, u64, u32)> {
        layout
            .spans(piece)
            .map(|span| (span.file, span.offset_bytes, span.len_bytes))
            .collect()
    }

    #[test]
    fn pieces_span_file_boundaries_and_skip_empty_files() {
        // Files of 10, 0, 25, 0, 0, 5 bytes in pieces of 16: 40 bytes, 3 pieces.
        let layout = PieceLayout::new([10, 0, 25, 0, 0, 5].into_iter(), 16).unwrap();
        assert_eq!((layout.total_bytes(), layout.piece_count()), (40, 3));
        assert_eq!(spans(&layout, 0), [(0, 0, 10), (2, 0, 6)]);
        assert_eq!(spans(&layout, 1), [(2, 6, 16)]);
        assert_eq!(spans(&layout, 2), [(2, 22, 3), (5, 0, 5)]);
        assert_eq!(spans(&layout, 3), []);
        assert_eq!(spans(&layout, u64::MAX), []);
        assert_eq!(layout.file_pieces(0), 0..1);
        assert_eq!(layout.file_pieces(1), 0..0);
        assert_eq!(layout.file_pieces(2), 0..3);
        assert_eq!(layout.file_pieces(5), 2..3);
        assert_eq!(layout.file_range(9), 40..40);
    }

    #[test]
    fn every_byte_is_in_exactly_one_span() {
        let lengths = [0, 1, 16, 17, 0, 15, 32, 3, 0];
        let layout = PieceLayout::new(lengths.into_iter(), 16).unwrap();
        let mut next_of_file = vec![0u64; lengths.len()];
        let mut last_file = 0;
        for piece in 0..layout.piece_count() {
            let mut piece_len = 0;
            for span in layout.spans(piece) {
                assert!(span.len_bytes > 0);
                assert!(span.file >= last_file, "files in order");
                assert_eq!(
                    span.offset_bytes, next_of_file[span.file],
                    "no gap, no overlap"
                );
                next_of_file[span.file] += u64::from(span.len_bytes);
                piece_len += u64::from(span.len_bytes);
                last_file = span.file;
            }
            let range = layout.piece_range(piece);
            assert_eq!(piece_len, range.end - range.start);
        }
        assert_eq!(next_of_file, lengths);
    }

    #[test]
    fn no_files_no_pieces_and_sums_that_overflow_are_refused() {
        let empty = PieceLayout::new([0, 0].into_iter(), 16).unwrap();
        assert_eq!((empty.total_bytes(), empty.piece_count()), (0, 0));
        assert_eq!(spans(&empty, 0), []);
        assert!(PieceLayout::new([u64::MAX, 1].into_iter(), 16).is_none());
        assert!(PieceLayout::new([1].into_iter(), 0).is_none());
        let huge = PieceLayout::new([u64::MAX].into_iter(), 1 << 26).unwrap();
        assert_eq!(spans(&huge, huge.piece_count() - 1).len(), 1);
    }
}
