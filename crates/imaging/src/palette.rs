//! PALETTE COLOR: the stored values index three lookup tables (red, green, blue), given whole or
//! as segments (PS3.3 C.7.6.3.1.5-6, C.7.9.2), and become 8-bit RGB. dicom-pixeldata 0.10 has no
//! palette support: without this the kiosk drew such a file (colour Doppler ultrasound) grey.

use crate::Error;
use dicom_core::value::PrimitiveValue;
use dicom_object::{InMemDicomObject, Tag};

/// The longest table the descriptor can announce (an entry count of 0 means 65,536).
const MAX_ENTRIES: usize = 1 << 16;

const DESCRIPTORS: [Tag; 3] = [Tag(0x0028, 0x1101), Tag(0x0028, 0x1102), Tag(0x0028, 0x1103)];
const DATA: [Tag; 3] = [Tag(0x0028, 0x1201), Tag(0x0028, 0x1202), Tag(0x0028, 0x1203)];
const SEGMENTED: [Tag; 3] = [Tag(0x0028, 0x1221), Tag(0x0028, 0x1222), Tag(0x0028, 0x1223)];

/// One channel's table: the value mapped to its first entry, and its entries as 8-bit levels.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    first: i64,
    entries: Vec<u8>,
}

impl Table {
    fn look_up(&self, value: i64) -> u8 {
        // Below the first mapped value: the first entry; past the last: the last (C.7.6.3.1.5).
        let last = self.entries.len().saturating_sub(1);
        let index = usize::try_from(value.saturating_sub(self.first)).unwrap_or(0).min(last);
        self.entries.get(index).copied().unwrap_or(0)
    }
}

/// The three tables of a PALETTE COLOR image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Palette {
    channels: [Table; 3],
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadPixels(format!("palette colour: {}", message.into()))
}

/// An OW or US element's 16-bit words, however the parser stored them.
fn words(obj: &InMemDicomObject, tag: Tag) -> Result<Option<Vec<u16>>, Error> {
    let Some(element) = obj.element_opt(tag).ok().flatten() else { return Ok(None) };
    let value = element.value().primitive().ok_or_else(|| bad(format!("{tag} is not a value")))?;
    Ok(Some(match value {
        PrimitiveValue::U16(v) => v.to_vec(),
        PrimitiveValue::I16(v) => v.iter().map(|&w| w as u16).collect(),
        PrimitiveValue::U8(bytes) => {
            bytes.chunks(2).map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect()
        }
        _ => return Err(bad(format!("{tag} has an unexpected value type"))),
    }))
}

/// Expands segmented table data (C.7.9.2): discrete, linear and indirect segments.
fn expand_segments(data: &[u16], limit: usize) -> Result<Vec<u16>, Error> {
    let mut out: Vec<u16> = Vec::new();
    // Where each segment's output began, for indirect segments that name earlier segments.
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (word offset of the segment, output index)
    let mut at = 0;
    while at < data.len() {
        let (kind, len) = (data[at], usize::from(*data.get(at + 1).ok_or_else(|| bad("segment cut short"))?));
        starts.push((at, out.len()));
        match kind {
            0 => {
                let values = data.get(at + 2..at + 2 + len).ok_or_else(|| bad("discrete segment cut short"))?;
                out.extend_from_slice(values);
                at += 2 + len;
            }
            1 => {
                let end = f64::from(*data.get(at + 2).ok_or_else(|| bad("linear segment cut short"))?);
                let start = f64::from(*out.last().ok_or_else(|| bad("a linear segment comes first"))?);
                // The segment's entries reach `end` in `len` equal steps from the previous value.
                for k in 1..=len {
                    out.push((start + (end - start) * k as f64 / len as f64).round() as u16);
                }
                at += 3;
            }
            2 => {
                let (lo, hi) = (
                    *data.get(at + 2).ok_or_else(|| bad("indirect segment cut short"))?,
                    *data.get(at + 3).ok_or_else(|| bad("indirect segment cut short"))?,
                );
                let offset = (usize::from(hi) << 16) | usize::from(lo);
                let first = starts
                    .iter()
                    .position(|&(word, _)| word == offset)
                    .ok_or_else(|| bad("indirect segment points nowhere"))?;
                let from = starts[first].1;
                // `len` segments from there: their output is contiguous, up to the next one's start.
                let to = starts.get(first + len).map_or(out.len(), |&(_, o)| o);
                if first + len > starts.len() - 1 || from > to {
                    return Err(bad("indirect segment copies segments that do not precede it"));
                }
                let copied: Vec<u16> = out[from..to].to_vec();
                out.extend(copied);
                at += 4;
            }
            other => return Err(bad(format!("unknown segment type {other}"))),
        }
        if out.len() > limit {
            return Err(bad("segments expand past the table's length"));
        }
    }
    Ok(out)
}

impl Palette {
    /// Reads the three descriptors and tables. `signed`: the pixel values (and so the first
    /// mapped value) are signed.
    pub(crate) fn read(obj: &InMemDicomObject, signed: bool) -> Result<Palette, Error> {
        let mut channels = Vec::with_capacity(3);
        for c in 0..3 {
            let descriptor = words(obj, DESCRIPTORS[c])?.ok_or_else(|| bad("a lookup table descriptor is missing"))?;
            let [count, first, bits] = descriptor[..] else {
                return Err(bad("a lookup table descriptor does not have three values"));
            };
            let count = if count == 0 { MAX_ENTRIES } else { usize::from(count) };
            let first = if signed { i64::from(first as i16) } else { i64::from(first) };
            let raw = match (words(obj, DATA[c])?, words(obj, SEGMENTED[c])?) {
                (Some(data), _) => data,
                (None, Some(segments)) => expand_segments(&segments, MAX_ENTRIES)?,
                (None, None) => return Err(bad("a lookup table's data is missing")),
            };
            let entries: Vec<u8> = match bits {
                16 => raw.iter().map(|&w| (w >> 8) as u8).collect(),
                8 if raw.len() * 2 == count => {
                    // Two 8-bit entries to a word, the first in the low byte.
                    raw.iter().flat_map(|w| w.to_le_bytes()).collect()
                }
                // One 8-bit entry to a word: the low byte, unless a writer put them all high.
                8 if raw.iter().all(|w| w & 0xFF == 0) => raw.iter().map(|&w| (w >> 8) as u8).collect(),
                8 => raw.iter().map(|&w| (w & 0xFF) as u8).collect(),
                other => return Err(bad(format!("{other} bits per entry (8 or 16 are allowed)"))),
            };
            if entries.len() < count {
                return Err(bad(format!("a table announces {count} entries and holds {}", entries.len())));
            }
            channels.push(Table { first, entries: entries[..count].to_vec() });
        }
        let [red, green, blue] = <[Table; 3]>::try_from(channels).map_err(|_| bad("three tables"))?;
        Ok(Palette { channels: [red, green, blue] })
    }

    /// Maps stored pixel values to RGB, three bytes a pixel.
    pub(crate) fn apply(&self, values: impl Iterator<Item = i64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(values.size_hint().0 * 3);
        for v in values {
            out.extend(self.channels.iter().map(|t| t.look_up(v)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_expand_as_the_standard_describes() {
        // Discrete 0, 10; linear to 50 in 4 steps; indirect: the first segment again.
        let data = [0, 2, 0, 10, 1, 4, 50, 2, 1, 0, 0];
        assert_eq!(expand_segments(&data, 100).expect("ok"), vec![0, 10, 20, 30, 40, 50, 0, 10]);
        assert!(expand_segments(&[1, 3, 9], 100).is_err(), "linear first");
        assert!(expand_segments(&[0, 5, 1], 100).is_err(), "cut short");
        assert!(expand_segments(&[7, 1, 1], 100).is_err(), "unknown type");
        assert!(expand_segments(&[0, 1, 0, 1, 60000, 1000], 100).is_err(), "bomb");
    }

    #[test]
    fn values_outside_the_table_take_its_ends() {
        let t = Table { first: 10, entries: vec![1, 2, 3] };
        assert_eq!([t.look_up(-5), t.look_up(10), t.look_up(12), t.look_up(99)], [1, 1, 3, 3]);
    }
}
