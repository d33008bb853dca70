//! Raw video frames in I420 (planar Y, then U and V at half resolution, rounded up), as decoders
//! produce them and the page's WebGL shader draws them; the size a peer may send is capped here.

/// The largest frame accepted from a peer, in pixels (a 4K camera); larger ones are dropped.
pub const MAX_PIXELS: u32 = 3840 * 2160;
/// The longest side accepted from a peer.
pub const MAX_SIDE: u32 = 4096;

/// One I420 frame with tightly packed planes: Y (width x height), then U and V, each
/// ceil(width/2) x ceil(height/2) (libvpx's layout for odd sizes too). Every constructor keeps
/// `data.len() == I420Frame::len_for(width, height)`, so reading the planes cannot go out of bounds.
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "I420Frame({}x{})", self.width, self.height)
    }
}

/// Why bytes are not an acceptable frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Zero, or beyond [`MAX_SIDE`] / [`MAX_PIXELS`].
    #[error("frame size {0}x{1} is outside what the kiosk accepts")]
    Size(u32, u32),
    /// The planes are not the size the dimensions call for.
    #[error("{got} bytes for a {width}x{height} I420 frame (needs {need})")]
    Length {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The colour conversion refused its buffers.
    #[error("colour conversion: {0}")]
    Convert(String),
}

impl I420Frame {
    /// A frame from packed planes, as a decoder hands them over: refused if the size is beyond
    /// the caps or the bytes do not match it.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, FrameError> {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS {
            return Err(FrameError::Size(width, height));
        }
        let need = I420Frame::len_for(width, height);
        if data.len() != need {
            return Err(FrameError::Length { width, height, got: data.len(), need });
        }
        Ok(I420Frame { width, height, data })
    }

    /// A frame filled with one colour (the kiosk's own sources; any size up to the caps).
    pub fn filled(width: u32, height: u32, y: u8, u: u8, v: u8) -> Self {
        let (width, height) = (width.clamp(1, MAX_SIDE), height.clamp(1, MAX_SIDE));
        let luma = width as usize * height as usize;
        let chroma = Self::chroma_len(width, height);
        let mut data = vec![y; luma];
        data.resize(luma + chroma, u);
        data.resize(luma + 2 * chroma, v);
        I420Frame { width, height, data }
    }

    fn chroma_len(width: u32, height: u32) -> usize {
        width.div_ceil(2) as usize * height.div_ceil(2) as usize
    }

    /// Bytes an I420 frame of this size takes.
    pub fn len_for(width: u32, height: u32) -> usize {
        width as usize * height as usize + 2 * Self::chroma_len(width, height)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Width of the U and V planes: ceil(width / 2).
    pub fn chroma_width(&self) -> u32 {
        self.width.div_ceil(2)
    }

    /// Height of the U and V planes: ceil(height / 2).
    pub fn chroma_height(&self) -> u32 {
        self.height.div_ceil(2)
    }

    /// All three planes, packed.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The planes, writable (their sizes cannot change).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = self.width as usize * self.height as usize;
        // Cannot panic: every constructor keeps data.len() == luma + 2 * chroma.
        let (y, rest) = self.data.split_at(luma);
        let (u, v) = rest.split_at(Self::chroma_len(self.width, self.height));
        (y, u, v)
    }

    /// Writes the frame (BT.601, limited range, as VP8 carries it) into `out` as 8-bit B, G, R, X
    /// with `stride` bytes per row: cairo's RGB24 on a little-endian machine. Converted by the
    /// `yuv` crate; a buffer that does not fit is an error, never a panic.
    pub fn to_bgrx(&self, out: &mut [u8], stride: u32) -> Result<(), FrameError> {
        let (y, u, v) = self.planes();
        let image = yuv::YuvPlanarImage {
            y_plane: y,
            y_stride: self.width,
            u_plane: u,
            u_stride: self.chroma_width(),
            v_plane: v,
            v_stride: self.chroma_width(),
            width: self.width,
            height: self.height,
        };
        yuv::yuv420_to_bgra(&image, out, stride, yuv::YuvRange::Limited, yuv::YuvStandardMatrix::Bt601)
            .map_err(|e| FrameError::Convert(e.to_string()))
    }

    /// The luma plane.
    pub fn y(&self) -> &[u8] {
        self.planes().0
    }

    /// Mean luma of the rectangle `(x, y, w, h)`, clipped to the frame.
    pub fn mean_luma(&self, x: u32, y: u32, w: u32, h: u32) -> f64 {
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        let mut sum = 0u64;
        let mut n = 0u64;
        for row in y.min(y1)..y1 {
            let start = (row * self.width + x.min(x1)) as usize;
            let end = (row * self.width + x1) as usize;
            sum += self.y()[start..end].iter().map(|&p| u64::from(p)).sum::<u64>();
            n += u64::from(x1 - x.min(x1));
        }
        if n == 0 {
            0.0
        } else {
            sum as f64 / n as f64
        }
    }

    /// The frame shrunk by `factor` in each direction (nearest pixel), for the self-view: the page
    /// draws it small, so sending it whole would only cost the WebKit process time.
    pub fn shrunk(&self, factor: u32) -> I420Frame {
        let factor = factor.max(1);
        let (w, h) = ((self.width / factor).max(2) & !1, (self.height / factor).max(2) & !1);
        let mut out = I420Frame::filled(w, h, 0, 128, 128);
        let (sy, su, sv) = self.planes();
        let (sw, scw) = (self.width as usize, self.chroma_width() as usize);
        let f = factor as usize;
        let (w, h) = (w as usize, h as usize);
        let (cw, ch) = (out.chroma_width() as usize, out.chroma_height() as usize);
        let (dy, rest) = out.data.split_at_mut(w * h);
        let (du, dv) = rest.split_at_mut(cw * ch);
        // Source indices are clamped to the plane: a factor that does not divide the size evenly
        // must not read past its end.
        let pick = |plane: &[u8], stride: usize, row: usize, col: usize| {
            plane.get((row * f) * stride + (col * f).min(stride.saturating_sub(1))).copied().unwrap_or(128)
        };
        for row in 0..h {
            for col in 0..w {
                dy[row * w + col] = pick(sy, sw, row, col);
            }
        }
        for row in 0..ch {
            for col in 0..cw {
                du[row * cw + col] = pick(su, scw, row, col);
                dv[row * cw + col] = pick(sv, scw, row, col);
            }
        }
        out
    }

    /// The frame resampled to `width` x `height` (bilinear), for sending a smaller size on a
    /// poor link.
    pub fn scaled(&self, width: u32, height: u32) -> I420Frame {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let mut out = I420Frame::filled(width, height, 0, 128, 128);
        let (sy, su, sv) = self.planes();
        let (cw, ch) = (out.chroma_width(), out.chroma_height());
        let luma = width as usize * height as usize;
        let (dy, rest) = out.data.split_at_mut(luma);
        let (du, dv) = rest.split_at_mut(cw as usize * ch as usize);
        resample(sy, (self.width, self.height), dy, (out.width, out.height));
        resample(su, (self.chroma_width(), self.chroma_height()), du, (cw, ch));
        resample(sv, (self.chroma_width(), self.chroma_height()), dv, (cw, ch));
        out
    }

    /// The frame as it travels to the page: a 12-byte header (width, height, then a frame number,
    /// each little-endian u32) followed by the I420 bytes.
    pub fn to_wire(&self, number: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.data.len());
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&number.to_le_bytes());
        out.extend_from_slice(&self.data);
        out
    }
}

/// Bilinear resampling of one plane (`src` is `sw` x `sh`, `dst` is `dw` x `dh`, both packed).
fn resample(src: &[u8], (sw, sh): (u32, u32), dst: &mut [u8], (dw, dh): (u32, u32)) {
    let (sw, sh, dw) = (sw as usize, sh as usize, dw as usize);
    let at = |x: usize, y: usize| f32::from(src.get(y * sw + x).copied().unwrap_or(128));
    let (fx, fy) = (sw as f32 / dw as f32, sh as f32 / dh.max(1) as f32);
    for (row, line) in dst.chunks_mut(dw.max(1)).enumerate() {
        let y = ((row as f32 + 0.5) * fy - 0.5).clamp(0.0, (sh - 1) as f32);
        let (y0, wy) = (y as usize, y.fract());
        let y1 = (y0 + 1).min(sh - 1);
        for (col, px) in line.iter_mut().enumerate() {
            let x = ((col as f32 + 0.5) * fx - 0.5).clamp(0.0, (sw - 1) as f32);
            let (x0, wx) = (x as usize, x.fract());
            let x1 = (x0 + 1).min(sw - 1);
            let top = at(x0, y0) * (1.0 - wx) + at(x1, y0) * wx;
            let bottom = at(x0, y1) * (1.0 - wx) + at(x1, y1) * wx;
            *px = (top * (1.0 - wy) + bottom * wy).round() as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_luma_of_regions() {
        let mut f = I420Frame::filled(8, 4, 10, 128, 128);
        for row in 0..4 {
            for col in 4..8 {
                f.data_mut()[row * 8 + col] = 200;
            }
        }
        assert_eq!(f.mean_luma(0, 0, 4, 4), 10.0);
        assert_eq!(f.mean_luma(4, 0, 4, 4), 200.0);
        assert_eq!(f.mean_luma(6, 0, 100, 100), 200.0, "clipped");
        assert_eq!(f.data.len(), I420Frame::len_for(8, 4));
        let small = f.shrunk(2);
        assert_eq!((small.width(), small.height()), (4, 2));
        assert_eq!(small.data.len(), I420Frame::len_for(4, 2));
        assert_eq!(small.mean_luma(0, 0, 2, 2), 10.0);
        assert_eq!(small.mean_luma(2, 0, 2, 2), 200.0);
        let wire = f.to_wire(7);
        assert_eq!(&wire[..12], &[8, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0]);
    }

    #[test]
    fn odd_sizes_have_rounded_up_chroma_and_any_plane_read_stays_inside() {
        // 213x160 is what Chromium sends at scaleResolutionDownBy 3 from 640x480.
        for (w, h) in [(213, 160), (427, 320), (1, 1), (3, 5), (641, 481)] {
            let f = I420Frame::filled(w, h, 50, 60, 70);
            assert_eq!(f.data().len(), I420Frame::len_for(w, h));
            let (y, u, v) = f.planes();
            assert_eq!(y.len(), (w * h) as usize);
            assert_eq!(u.len(), (w.div_ceil(2) * h.div_ceil(2)) as usize);
            assert_eq!((u[u.len() - 1], v[v.len() - 1]), (60, 70));
            for factor in 1..5 {
                let s = f.shrunk(factor);
                assert_eq!(s.data().len(), I420Frame::len_for(s.width(), s.height()));
            }
            assert!(I420Frame::new(w, h, f.data().to_vec()).is_ok());
        }
    }

    #[test]
    fn conversion_gives_grey_white_and_colour_at_odd_sizes_and_refuses_short_buffers() {
        for (w, h) in [(4, 2), (213, 160), (3, 3), (1, 1)] {
            let stride = w * 4;
            let mut out = vec![0u8; (stride * h) as usize];
            I420Frame::filled(w, h, 126, 128, 128).to_bgrx(&mut out, stride).expect("grey");
            assert!(out.chunks(4).all(|p| p[..3] == [128, 128, 128]), "{w}x{h} mid grey: {:?}", &out[..8]);
            I420Frame::filled(w, h, 235, 128, 128).to_bgrx(&mut out, stride).expect("white");
            assert!(out.chunks(4).all(|p| p[..3] == [255, 255, 255]), "{w}x{h} limited-range white is full white");
            // Limited-range pure red (Y 81, U 90, V 240): B low, G low, R high.
            I420Frame::filled(w, h, 81, 90, 240).to_bgrx(&mut out, stride).expect("red");
            assert!(out.chunks(4).all(|p| p[0] < 10 && p[1] < 10 && p[2] > 245), "{w}x{h} red: {:?}", &out[..4]);
        }
        let f = I420Frame::filled(213, 160, 126, 128, 128);
        let mut short = vec![0u8; 213 * 4 * 159];
        assert!(matches!(f.to_bgrx(&mut short, 213 * 4), Err(FrameError::Convert(_))));
        assert!(matches!(f.to_bgrx(&mut vec![0u8; 213 * 4 * 160], 212), Err(FrameError::Convert(_))));
    }

    #[test]
    fn scaling_keeps_content_and_sizes_valid() {
        let mut f = I420Frame::filled(640, 480, 200, 100, 150);
        for row in 0..480 {
            for col in 320..640 {
                f.data_mut()[row * 640 + col] = 60;
            }
        }
        for (w, h) in [(480, 360), (320, 240), (160, 120), (213, 160)] {
            let s = f.scaled(w, h);
            assert_eq!(s.data().len(), I420Frame::len_for(w, h));
            assert_eq!(s.mean_luma(0, 0, w / 3, h), 200.0, "{w}x{h} left");
            assert_eq!(s.mean_luma(w - w / 3, 0, w / 3, h), 60.0, "{w}x{h} right");
            let (_, u, v) = s.planes();
            assert!(u.iter().all(|&c| c == 100) && v.iter().all(|&c| c == 150));
        }
    }

    #[test]
    fn frames_of_the_wrong_length_or_beyond_the_caps_are_refused() {
        assert!(matches!(I420Frame::new(213, 160, vec![0; 213 * 160 * 3 / 2]), Err(FrameError::Length { .. })));
        assert!(matches!(I420Frame::new(0, 10, vec![]), Err(FrameError::Size(0, 10))));
        assert!(matches!(I420Frame::new(8192, 2, vec![0; I420Frame::len_for(8192, 2)]), Err(FrameError::Size(..))));
        assert!(matches!(
            I420Frame::new(4096, 4096, vec![0; I420Frame::len_for(4096, 4096)]),
            Err(FrameError::Size(..))
        ));
    }
}
