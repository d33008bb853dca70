//! Paints the consultant's shared image on the native surface: the rendered frame placed by the
//! consultant's zoom and pan, their pointer and measurement, and a caption line. Pixels stay in this process's
//! memory (a cairo surface), never in the page.

use sc_imaging::{Rendered, Screen};

/// The pointer's colour: a yellow no grey image contains (the e2e test looks for it).
pub(crate) const POINTER_RGB: (f64, f64, f64) = (1.0, 0.83, 0.0);

/// The measurement's colour: a cyan no grey image contains.
pub(crate) const MEASURE_RGB: (f64, f64, f64) = (0.0, 0.9, 1.0);

/// The frame as a cairo surface (grey or RGB to cairo's native-endian 0xXXRRGGBB).
pub(crate) fn surface_of(screen: &Screen) -> Option<gtk::cairo::ImageSurface> {
    let (w, h) = (i32::try_from(screen.width).ok()?, i32::try_from(screen.height).ok()?);
    let mut surface = gtk::cairo::ImageSurface::create(gtk::cairo::Format::Rgb24, w, h).ok()?;
    let stride = usize::try_from(surface.stride()).ok()?;
    let width = screen.width as usize;
    {
        let mut data = surface.data().ok()?;
        for (row, line) in data.chunks_mut(stride).take(screen.height as usize).enumerate() {
            for col in 0..width {
                let i = row * width + col;
                let (r, g, b) = match &*screen.pixels {
                    Rendered::Grey(p) => (p[i], p[i], p[i]),
                    Rendered::Rgb(p) => (p[3 * i], p[3 * i + 1], p[3 * i + 2]),
                    _ => (0, 0, 0),
                };
                line[col * 4..col * 4 + 4].copy_from_slice(&[b, g, r, 255]);
            }
        }
    }
    Some(surface)
}

/// Paints `screen` into the `(x, y, w, h)` box: fitted, then zoomed about the panned point.
pub(crate) fn paint(
    cr: &gtk::cairo::Context,
    screen: &Screen,
    surface: &gtk::cairo::ImageSurface,
    (x, y, w, h): (f64, f64, f64, f64),
) {
    let (iw, ih) = (f64::from(screen.width), f64::from(screen.height));
    let scale = (w / iw).min(h / ih) * f64::from(screen.zoom);
    // The image point (in pixels) that sits at the box's centre.
    let (cx, cy) = ((0.5 + f64::from(screen.pan[0])) * iw, (0.5 + f64::from(screen.pan[1])) * ih);
    let to_box = |px: f64, py: f64| (x + w / 2.0 + (px - cx) * scale, y + h / 2.0 + (py - cy) * scale);
    let _ = cr.save();
    cr.rectangle(x, y, w, h);
    cr.clip();
    cr.set_source_rgb(0.0, 0.0, 0.0);
    let _ = cr.paint();
    let (ox, oy) = to_box(0.0, 0.0);
    let _ = cr.save();
    cr.translate(ox, oy);
    cr.scale(scale, scale);
    if cr.set_source_surface(surface, 0.0, 0.0).is_ok() {
        // Smooth when enlarged: medical images are looked at closely.
        cr.source().set_filter(gtk::cairo::Filter::Good);
        let _ = cr.paint();
    }
    let _ = cr.restore();
    if let Some([px, py]) = screen.pointer {
        let (sx, sy) = to_box(f64::from(px) * iw, f64::from(py) * ih);
        let (r, g, b) = POINTER_RGB;
        cr.set_source_rgb(r, g, b);
        cr.set_line_width(4.0);
        cr.arc(sx, sy, 16.0, 0.0, std::f64::consts::TAU);
        let _ = cr.stroke();
        cr.arc(sx, sy, 4.0, 0.0, std::f64::consts::TAU);
        let _ = cr.fill();
    }
    if let Some(([[x1, y1], [x2, y2]], label)) = &screen.measure {
        // The consultant's measurement: a cyan line with end ticks, its length beside it.
        let (ax, ay) = to_box(f64::from(*x1) * iw, f64::from(*y1) * ih);
        let (bx, by) = to_box(f64::from(*x2) * iw, f64::from(*y2) * ih);
        let (r, g, b) = MEASURE_RGB;
        cr.set_source_rgb(r, g, b);
        cr.set_line_width(3.0);
        cr.move_to(ax, ay);
        cr.line_to(bx, by);
        let _ = cr.stroke();
        for (cx, cy) in [(ax, ay), (bx, by)] {
            cr.arc(cx, cy, 5.0, 0.0, std::f64::consts::TAU);
            let _ = cr.fill();
        }
        cr.select_font_face("sans-serif", gtk::cairo::FontSlant::Normal, gtk::cairo::FontWeight::Bold);
        cr.set_font_size(20.0);
        cr.move_to((ax + bx) / 2.0 + 10.0, (ay + by) / 2.0 - 10.0);
        let _ = cr.show_text(label);
    }
    if !screen.caption.is_empty() {
        cr.set_source_rgba(0.0, 0.0, 0.0, 0.6);
        cr.rectangle(x, y, w, 36.0);
        let _ = cr.fill();
        cr.set_source_rgb(1.0, 1.0, 1.0);
        cr.select_font_face("sans-serif", gtk::cairo::FontSlant::Normal, gtk::cairo::FontWeight::Normal);
        cr.set_font_size(18.0);
        cr.move_to(x + 16.0, y + 25.0);
        let _ = cr.show_text(&screen.caption);
    }
    let _ = cr.restore();
}
