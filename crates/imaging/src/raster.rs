//! PNG and JPEG pictures (photos, screenshots of reports): decoded with the image crate under the
//! same limits; greyscale pictures stay grey so window/level still applies.

use crate::image::{Frame, Image, Limits, Source};
use crate::window::Window;
use crate::Error;

pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    let format = image::guess_format(bytes).map_err(|e| Error::BadPicture(e.to_string()))?;
    let source = match format {
        image::ImageFormat::Png => Source::Png,
        image::ImageFormat::Jpeg => Source::Jpeg,
        _ => return Err(Error::UnknownFormat),
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    // The decoder refuses anything bigger than the limits before allocating for it.
    let mut caps = image::Limits::default();
    let side = u32::try_from(limits.max_frame_pixels.isqrt().max(1)).unwrap_or(u32::MAX);
    caps.max_image_width = Some(side.max(4096));
    caps.max_image_height = Some(side.max(4096));
    caps.max_alloc = Some(limits.max_frame_pixels.saturating_mul(4));
    reader.limits(caps.clone());
    let (w, h) = reader.into_dimensions().map_err(|e| Error::BadPicture(e.to_string()))?;
    limits.check(w, h, 1)?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(caps);
    let img = reader.decode().map_err(|e| Error::BadPicture(e.to_string()))?;
    let (frame, window) = if img.color().has_color() {
        (Frame::Rgb(img.to_rgb8().into_raw()), Window::covering(0.0, 255.0))
    } else if matches!(img.color(), image::ColorType::L16 | image::ColorType::La16) {
        // 16-bit grey (exported radiographs): keep every level, window over what is there.
        let values: Vec<f32> = img.to_luma16().into_raw().into_iter().map(f32::from).collect();
        let (min, max) = values.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        (Frame::Grey(values), Window::covering(f64::from(min), f64::from(max)))
    } else {
        (Frame::Grey(img.to_luma8().into_raw().into_iter().map(f32::from).collect()), Window::covering(0.0, 255.0))
    };
    Ok(Image {
        width: img.width(),
        height: img.height(),
        frames: vec![frame],
        source,
        default_window: window,
        inverted: false,
        modality: None,
        overlays: Vec::new(),
        frame_time: None,
        pixel_spacing: None,
    })
}
