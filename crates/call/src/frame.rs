//! Raw video frames in I420 (planar Y, then U and V at half resolution), as decoders produce them
//! and the page's WebGL shader draws them.

/// One I420 frame with tightly packed planes.
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Y plane (width*height), then U and V (each width/2*height/2).
    pub data: Vec<u8>,
}

impl std::fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "I420Frame({}x{})", self.width, self.height)
    }
}

impl I420Frame {
    /// A frame filled with one colour.
    pub fn filled(width: u32, height: u32, y: u8, u: u8, v: u8) -> Self {
        let (w, h) = (width as usize, height as usize);
        let mut data = vec![y; w * h];
        data.resize(w * h + w * h / 4, u);
        data.resize(w * h + w * h / 2, v);
        I420Frame { width, height, data }
    }

    /// Bytes an I420 frame of this size takes.
    pub fn len_for(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * ((w / 2) * (h / 2))
    }

    /// The luma plane.
    pub fn y(&self) -> &[u8] {
        &self.data[..(self.width * self.height) as usize]
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
        let (w, h) = ((self.width / factor) & !1, (self.height / factor) & !1);
        let (sw, sh) = (self.width as usize, self.height as usize);
        let mut data = Vec::with_capacity(I420Frame::len_for(w, h));
        let f = factor as usize;
        for row in 0..h as usize {
            data.extend((0..w as usize).map(|col| self.data[row * f * sw + col * f]));
        }
        for plane in 0..2 {
            let base = sw * sh + plane * (sw / 2) * (sh / 2);
            for row in 0..(h / 2) as usize {
                data.extend((0..(w / 2) as usize).map(|col| self.data[base + row * f * (sw / 2) + col * f]));
            }
        }
        I420Frame { width: w, height: h, data }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_luma_of_regions() {
        let mut f = I420Frame::filled(8, 4, 10, 128, 128);
        for row in 0..4 {
            for col in 4..8 {
                f.data[row * 8 + col] = 200;
            }
        }
        assert_eq!(f.mean_luma(0, 0, 4, 4), 10.0);
        assert_eq!(f.mean_luma(4, 0, 4, 4), 200.0);
        assert_eq!(f.mean_luma(6, 0, 100, 100), 200.0, "clipped");
        assert_eq!(f.data.len(), I420Frame::len_for(8, 4));
        let small = f.shrunk(2);
        assert_eq!((small.width, small.height), (4, 2));
        assert_eq!(small.data.len(), I420Frame::len_for(4, 2));
        assert_eq!(small.mean_luma(0, 0, 2, 2), 10.0);
        assert_eq!(small.mean_luma(2, 0, 2, 2), 200.0);
        let wire = f.to_wire(7);
        assert_eq!(&wire[..12], &[8, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0]);
    }
}
