//! A camera that plays a Y4M clip in a loop (as Chromium's `--use-file-for-fake-video-capture`
//! does), so link tests and benchmarks send what a real camera would rather than a pattern that
//! compresses to almost nothing. 8-bit 4:2:0 clips only; the clip is streamed from disk, never
//! held whole in memory.

use crate::frame::I420Frame;
use crate::source::VideoSource;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

/// The longest header line accepted (real headers are well under 100 bytes).
const MAX_HEADER: usize = 1024;

/// A looping Y4M clip.
#[derive(Debug)]
pub struct Y4mClip {
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    /// Where the first frame starts (after the stream header).
    first_frame: u64,
    width: u32,
    height: u32,
    /// The last frame read, repeated if the file becomes unreadable mid-call.
    last: I420Frame,
    frames_read: u64,
}

impl Y4mClip {
    /// Opens `path` for a call of `width` x `height`: the clip must be that size, 8-bit 4:2:0,
    /// with at least one whole frame.
    pub fn open(path: &Path, width: u32, height: u32) -> Result<Self, String> {
        let why = |e: &dyn std::fmt::Display| format!("video clip {}: {e}", path.display());
        let file = std::fs::File::open(path).map_err(|e| why(&e))?;
        let mut reader = BufReader::new(file);
        let header = read_line(&mut reader).map_err(|e| why(&e))?.ok_or_else(|| why(&"empty file"))?;
        let (w, h) = parse_header(&header).map_err(|e| why(&e))?;
        if (w, h) != (width, height) {
            return Err(why(&format!("the clip is {w}x{h}, the call sends {width}x{height}")));
        }
        let first_frame = reader.stream_position().map_err(|e| why(&e))?;
        let blank = I420Frame::filled(w, h, 16, 128, 128);
        let mut clip =
            Y4mClip { path: path.to_owned(), reader, first_frame, width: w, height: h, last: blank, frames_read: 0 };
        let first = clip.read_frame().map_err(|e| why(&e))?.ok_or_else(|| why(&"no whole frame"))?;
        clip.last = first;
        clip.reader.seek(SeekFrom::Start(first_frame)).map_err(|e| why(&e))?;
        Ok(clip)
    }

    /// The next frame of the file, `None` at its end (a partial last frame counts as the end).
    fn read_frame(&mut self) -> std::io::Result<Option<I420Frame>> {
        let Some(line) = read_line(&mut self.reader)? else { return Ok(None) };
        if !line.starts_with("FRAME") {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a frame does not start with FRAME"));
        }
        let mut data = vec![0u8; I420Frame::len_for(self.width, self.height)];
        match self.reader.read_exact(&mut data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        I420Frame::new(self.width, self.height, data)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    /// How many frames have been read from the file so far (loops included).
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }
}

impl VideoSource for Y4mClip {
    fn next_frame(&mut self) -> I420Frame {
        let next = match self.read_frame() {
            Ok(Some(f)) => Ok(Some(f)),
            // The end: back to the first frame.
            Ok(None) => self.reader.seek(SeekFrom::Start(self.first_frame)).and_then(|_| self.read_frame()),
            Err(e) => Err(e),
        };
        match next {
            Ok(Some(f)) => {
                self.frames_read += 1;
                self.last = f.clone();
                f
            }
            Ok(None) | Err(_) => {
                // The file changed under us: keep sending the last picture rather than ending the call.
                tracing::warn!(path = %self.path.display(), "video clip unreadable: repeating the last frame");
                self.last.clone()
            }
        }
    }
}

/// One `\n`-terminated line, without the newline; `None` at the end of the file.
fn read_line(reader: &mut BufReader<std::fs::File>) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = reader.by_ref().take(MAX_HEADER as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Ok(None); // no newline within the limit, or a cut-off last line: the end
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "header is not text"))
}

/// `YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg` -> (640, 480); refuses what is not 8-bit 4:2:0.
fn parse_header(line: &str) -> Result<(u32, u32), String> {
    let mut words = line.split(' ');
    if words.next() != Some("YUV4MPEG2") {
        return Err("not a Y4M file".into());
    }
    let (mut w, mut h) = (None, None);
    for word in words {
        let (tag, value) = word.split_at(word.len().min(1));
        match tag {
            "W" => w = value.parse::<u32>().ok(),
            "H" => h = value.parse::<u32>().ok(),
            // 4:2:0 in any siting; no colour space tag also means 4:2:0.
            "C" if !["420", "420jpeg", "420mpeg2", "420paldv"].contains(&value) => {
                return Err(format!("colour space C{value}: only 8-bit 4:2:0 clips are played"));
            }
            "I" if value != "p" && value != "?" => return Err("interlaced clips are not played".into()),
            _ => {}
        }
    }
    match (w, h) {
        (Some(w), Some(h)) if w > 0 && h > 0 && w <= crate::frame::MAX_SIDE && h <= crate::frame::MAX_SIDE => {
            Ok((w, h))
        }
        _ => Err("no usable W and H in the header".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(header: &str, frames: &[u8], extra: &[u8]) -> tempfile::NamedTempFile {
        let mut bytes = format!("{header}\n").into_bytes();
        for &luma in frames {
            bytes.extend_from_slice(b"FRAME Ixyz\n");
            bytes.extend(std::iter::repeat_n(luma, 4 * 2));
            bytes.extend(std::iter::repeat_n(128, 4)); // U and V, 2x1 each
        }
        bytes.extend_from_slice(extra);
        let f = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(f.path(), bytes).expect("write");
        f
    }

    #[test]
    fn a_clip_plays_in_a_loop_and_a_cut_off_last_frame_counts_as_the_end() {
        let f = clip("YUV4MPEG2 W4 H2 F30:1 Ip A1:1 C420jpeg", &[10, 20, 30], b"FRAME\n\x01\x02");
        let mut c = Y4mClip::open(f.path(), 4, 2).expect("open");
        let lumas: Vec<u8> = (0..7).map(|_| c.next_frame().y()[0]).collect();
        assert_eq!(lumas, [10, 20, 30, 10, 20, 30, 10]);
        assert_eq!(c.frames_read(), 7);
    }

    #[test]
    fn clips_the_kiosk_cannot_play_are_refused_in_words() {
        for (header, frames, want) in [
            ("YUV4MPEG2 W4 H2 F30:1 C444", &[1u8][..], "only 8-bit 4:2:0"),
            ("YUV4MPEG2 W4 H2 C420p10", &[1][..], "only 8-bit 4:2:0"),
            ("YUV4MPEG2 W4 H2 It", &[1][..], "interlaced"),
            ("YUV4MPEG W4 H2", &[1][..], "not a Y4M file"),
            ("YUV4MPEG2 H2", &[1][..], "no usable W and H"),
            ("YUV4MPEG2 W4 H2", &[][..], "no whole frame"),
            ("YUV4MPEG2 W6 H2", &[1][..], "the clip is 6x2"),
        ] {
            let f = clip(header, frames, b"");
            let e = Y4mClip::open(f.path(), 4, 2).expect_err(header);
            assert!(e.contains(want), "{header}: {e}");
        }
        assert!(Y4mClip::open(Path::new("/nonexistent/clip.y4m"), 4, 2).is_err());
    }
}
