//! A DICOM file's element lengths, checked before dicom-rs parses it: dicom-parser allocates and
//! zeroes a value's declared length before reading it, so an element claiming 4 GiB in a 1 KiB
//! file would take 4 GiB of memory before failing. Every length here must fit in what is left.
//!
//! The walk is linear: sequences and items are stepped into (their elements are checked too),
//! values and pixel-data fragments are stepped over. Implicit-VR data finds sequences through the
//! standard dictionary, as dicom-rs does.

use crate::Error;
use dicom_core::dictionary::DataDictionary as _;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

fn bad(message: String) -> Error {
    Error::BadDicom(message)
}

#[derive(Clone, Copy)]
struct Encoding {
    implicit: bool,
    big: bool,
}

struct Walk<'a> {
    data: &'a [u8],
    pos: usize,
    enc: Encoding,
    /// Encodings to return to at the end of each undefined-length sequence (UN switches to implicit).
    sequences: Vec<Encoding>,
    /// Inside encapsulated pixel data: items are fragments, stepped over.
    fragments: bool,
}

impl Walk<'_> {
    fn u16(&self, at: usize) -> u16 {
        let b = [self.data[at], self.data[at + 1]];
        if self.enc.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(&self, at: usize) -> u32 {
        let b = [self.data[at], self.data[at + 1], self.data[at + 2], self.data[at + 3]];
        if self.enc.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn fits(&self, len: u32, tag: Tag) -> Result<(), Error> {
        let left = self.data.len() - self.pos;
        if len as usize > left {
            return Err(bad(format!("element {tag} claims {len} bytes but only {left} remain")));
        }
        Ok(())
    }

    /// Walks until the end, or (with `meta_only`) until the first element past group 0002.
    /// Returns the transfer syntax UID when the meta group names one.
    fn run(&mut self, meta_only: bool) -> Result<Option<String>, Error> {
        let mut syntax = None;
        while self.pos + 8 <= self.data.len() {
            let (group, element) = (self.u16(self.pos), self.u16(self.pos + 2));
            let tag = Tag(group, element);
            if meta_only && group != 0x0002 {
                break;
            }
            if group == 0xFFFE {
                // Items and delimiters: tag and a 4-byte length, no VR, in any encoding.
                let len = self.u32(self.pos + 4);
                self.pos += 8;
                match element {
                    0xE000 if self.fragments => {
                        self.fits(len, tag)?;
                        self.pos += len as usize;
                    }
                    0xE000 if len != UNDEFINED => self.fits(len, tag)?, // step into the item
                    0xE0DD if self.fragments => self.fragments = false,
                    0xE0DD => {
                        if let Some(enc) = self.sequences.pop() {
                            self.enc = enc;
                        }
                    }
                    _ => {} // an undefined-length item, or an item's end
                }
                continue;
            }
            let (vr, len, header) = if self.enc.implicit {
                let vr = StandardDataDictionary.by_tag(tag).map(|e| e.vr.relaxed()).unwrap_or(VR::UN);
                (vr, self.u32(self.pos + 4), 8)
            } else {
                let code = [self.data[self.pos + 4], self.data[self.pos + 5]];
                let vr = VR::from_binary(code).unwrap_or(VR::UN);
                let long = matches!(
                    vr,
                    VR::OB
                        | VR::OD
                        | VR::OF
                        | VR::OL
                        | VR::OV
                        | VR::OW
                        | VR::SQ
                        | VR::SV
                        | VR::UC
                        | VR::UN
                        | VR::UR
                        | VR::UT
                        | VR::UV
                );
                if long {
                    if self.pos + 12 > self.data.len() {
                        return Err(bad(format!("element {tag} is cut short")));
                    }
                    (vr, self.u32(self.pos + 8), 12)
                } else {
                    (vr, u32::from(self.u16(self.pos + 6)), 8)
                }
            };
            self.pos += header;
            if tag == Tag(0x0002, 0x0010) && len != UNDEFINED {
                self.fits(len, tag)?;
                let value = &self.data[self.pos..self.pos + len as usize];
                syntax = Some(String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_owned());
            }
            if len == UNDEFINED {
                if tag == Tag(0x7FE0, 0x0010) {
                    self.fragments = true;
                } else {
                    // A sequence (an undefined-length UN holds implicit little-endian data).
                    self.sequences.push(self.enc);
                    if vr == VR::UN {
                        self.enc = Encoding { implicit: true, big: false };
                    }
                }
                continue;
            }
            self.fits(len, tag)?;
            if vr != VR::SQ {
                self.pos += len as usize;
            }
        }
        Ok(syntax)
    }
}

/// Checks every element length of a Part 10 file (`bytes` from the preamble) against the bytes
/// left; `max_inflated` bounds a deflated data set once inflated.
pub(crate) fn check(bytes: &[u8], max_inflated: usize) -> Result<(), Error> {
    let body = bytes.get(132..).ok_or_else(|| bad("the file ends inside its header".into()))?;
    let mut meta = Walk {
        data: body,
        pos: 0,
        enc: Encoding { implicit: false, big: false },
        sequences: Vec::new(),
        fragments: false,
    };
    let syntax = meta.run(true)?.unwrap_or_default();
    // dicom-rs ends the meta group where its group length (0002,0000) says; this walk ends it at
    // the first element of another group. Were they to differ, dicom-rs would parse (and inflate)
    // a data set this check never saw: a fuzzed file whose deflated data set declared a 2 GB
    // value passed here and took 2.7 GB and 9 s there (issue #13's fuzzing).
    if body.len() >= 12 && body[..4] == [0x02, 0x00, 0x00, 0x00] && &body[4..6] == b"UL" {
        let declared = u64::from(u32::from_le_bytes([body[8], body[9], body[10], body[11]]));
        let walked = (meta.pos as u64).saturating_sub(12);
        if declared != walked {
            return Err(bad(format!("the meta group says it is {declared} bytes long but its elements take {walked}")));
        }
    }
    let rest = &body[meta.pos..];
    let enc = match syntax.as_str() {
        IMPLICIT_LE => Encoding { implicit: true, big: false },
        EXPLICIT_BE => Encoding { implicit: false, big: true },
        _ => Encoding { implicit: false, big: false },
    };
    if syntax == DEFLATED {
        use std::io::Read as _;
        let mut inflated = Vec::new();
        let mut reader = flate2::read::DeflateDecoder::new(rest).take(max_inflated as u64 + 1);
        reader.read_to_end(&mut inflated).map_err(|e| bad(format!("the deflated data set does not inflate: {e}")))?;
        if inflated.len() > max_inflated {
            return Err(Error::TooLarge {
                what: "inflated data set",
                limit: max_inflated as u64,
                actual: inflated.len() as u64,
            });
        }
        return Walk { data: &inflated, pos: 0, enc, sequences: Vec::new(), fragments: false }.run(false).map(drop);
    }
    Walk { data: rest, pos: 0, enc, sequences: Vec::new(), fragments: false }.run(false).map(drop)
}
