//! The consultant's video on a native GTK surface above the page, instead of in the page.
//!
//! Measured (scripts/bench.sh): drawing 640x480 at 30 fps through WebKit's software WebGL cost the
//! kiosk's tree ~1.4 cores against ~0.3 for a Chromium peer. Here a `gtk::DrawingArea` packed above
//! the webview in the window's box shows the newest frame (converted to RGB and scaled by cairo, on
//! the GTK main thread), with the self-view inset; during a call the webview shrinks to the strip
//! of call controls. A main-thread timer polls the call at the frame rate, so no GTK object is
//! touched from another thread. While the consultant shares an image, the image takes the main
//! part (src/image_view.rs) and the consultant's video and the self-view move to a column beside it.

use crate::calls::Calls;
use sc_call::consultation::Phase;
use sc_call::I420Frame;
use std::sync::Arc;
use tauri::{AppHandle, Manager as _, Runtime};

/// Height of the page's call-control strip while the native surface shows the video.
const CONTROLS_HEIGHT: i32 = 96;

/// Whether calls draw natively: `SC_KIOSK_VIDEO=page` keeps the WebGL page renderer.
pub fn native_enabled() -> bool {
    !std::env::var("SC_KIOSK_VIDEO").is_ok_and(|v| v == "page")
}

// Cairo's RGB24 is B, G, R, X in memory only on little-endian machines (what `to_bgrx` writes).
const _: () = assert!(cfg!(target_endian = "little"), "the native surface assumes a little-endian machine");

/// The frame as a cairo surface; `None` (the frame is skipped) if cairo or the conversion refuses it.
fn surface_for(frame: &I420Frame) -> Option<gtk::cairo::ImageSurface> {
    let w = i32::try_from(frame.width()).ok()?;
    let h = i32::try_from(frame.height()).ok()?;
    let mut surface = gtk::cairo::ImageSurface::create(gtk::cairo::Format::Rgb24, w, h).ok()?;
    let stride = u32::try_from(surface.stride()).ok()?;
    {
        let mut data = surface.data().ok()?;
        if let Err(e) = frame.to_bgrx(&mut data, stride) {
            tracing::debug!(error = %e, ?frame, "frame not drawn");
            return None;
        }
    }
    Some(surface)
}

/// Paints `frame` letterboxed into the `(x, y, w, h)` box.
fn paint(cr: &gtk::cairo::Context, frame: &I420Frame, (x, y, w, h): (f64, f64, f64, f64)) {
    let Some(surface) = surface_for(frame) else { return };
    let scale = (w / f64::from(frame.width())).min(h / f64::from(frame.height()));
    let (dw, dh) = (f64::from(frame.width()) * scale, f64::from(frame.height()) * scale);
    let _ = cr.save();
    cr.translate(x + (w - dw) / 2.0, y + (h - dh) / 2.0);
    cr.scale(scale, scale);
    if cr.set_source_surface(&surface, 0.0, 0.0).is_ok() {
        // Bilinear costs several times nearest in software; the picture is video, not text.
        cr.source().set_filter(gtk::cairo::Filter::Fast);
        let _ = cr.paint();
    }
    let _ = cr.restore();
}

/// Draws what is shown into a `(w, h)` area: the consultant's video filling it with the self-view
/// inset, or a shared image beside a column with both videos.
fn draw(cr: &gtk::cairo::Context, (w, h): (f64, f64), s: &Shown) {
    cr.set_source_rgb(0.0, 0.0, 0.0);
    let _ = cr.paint();
    if let (Some(image), Some((_, surface))) = (&s.image, &s.image_surface) {
        // The image beside a column with the consultant (small, still visible) and the self-view.
        let column = (w / 4.0).max(160.0);
        crate::image_view::paint(cr, image, surface, (0.0, 0.0, w - column - 16.0, h));
        let vh = column * 3.0 / 4.0;
        if let Some(f) = &s.remote {
            paint(cr, f, (w - column - 8.0, 8.0, column, vh));
        }
        if let Some(f) = &s.local {
            paint(cr, f, (w - column - 8.0, 16.0 + vh, column, vh));
        }
        return;
    }
    if let Some(f) = &s.remote {
        paint(cr, f, (0.0, 0.0, w, h));
    }
    if let Some(f) = &s.local {
        // The self-view, bottom right, a fifth of the width.
        let (sw, sh) = (w / 5.0, w / 5.0 * 3.0 / 4.0);
        paint(cr, f, (w - sw - 24.0, h - sh - 24.0, sw, sh));
    }
}

#[derive(Default)]
struct Shown {
    remote: Option<Arc<I420Frame>>,
    local: Option<Arc<I420Frame>>,
    image: Option<Arc<sc_imaging::Screen>>,
    /// The image's pixels as a cairo surface, rebuilt only when the pixels change.
    image_surface: Option<(Arc<sc_imaging::Rendered>, gtk::cairo::ImageSurface)>,
}

/// Adds the surface to the main window; call once, on the main thread (Tauri's `setup`).
pub fn install<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    use gtk::prelude::*;
    let Some(window) = app.get_webview_window("main") else { return Ok(()) };
    let vbox = window.default_vbox()?;
    let children = vbox.children();
    tracing::info!(children = ?children.iter().map(|c| c.type_().name()).collect::<Vec<_>>(), "native video surface");
    let Some(webview) = children.into_iter().next() else { return Ok(()) };
    let area = gtk::DrawingArea::new();
    area.set_vexpand(true);
    vbox.pack_start(&area, true, true, 0);
    vbox.reorder_child(&area, 0);
    area.set_no_show_all(true);
    area.hide();

    let shown = std::rc::Rc::new(std::cell::RefCell::new(Shown::default()));
    let draw_state = shown.clone();
    area.connect_draw(move |area, cr| {
        let size = (f64::from(area.allocated_width()), f64::from(area.allocated_height()));
        let Ok(s) = draw_state.try_borrow() else { return gtk::glib::Propagation::Stop };
        // A panic must never unwind into GTK's C code (that aborts the kiosk mid-call): a frame
        // that cannot be drawn is skipped, and the next one is tried.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw(cr, size, &s))).is_err() {
            tracing::error!("drawing the call panicked: frame skipped");
        }
        gtk::glib::Propagation::Stop
    });

    let app = app.clone();
    let mut in_call = false;
    gtk::glib::timeout_add_local(std::time::Duration::from_millis(15), move || {
        let calls = app.state::<Arc<Calls>>();
        let now_in_call = matches!(calls.phase(), Some(Phase::Connecting | Phase::InCall { .. }));
        if now_in_call != in_call {
            in_call = now_in_call;
            if in_call {
                // The webview asks for the whole window as its natural height; minimum sizes are
                // what the box honours, so the area claims all but the controls' strip.
                vbox.set_child_packing(&webview, false, false, 0, gtk::PackType::Start);
                webview.set_size_request(-1, CONTROLS_HEIGHT);
                area.set_size_request(-1, (vbox.allocated_height() - CONTROLS_HEIGHT).max(1));
                area.show();
            } else {
                area.hide();
                area.set_size_request(-1, -1);
                webview.set_size_request(-1, -1);
                vbox.set_child_packing(&webview, true, true, 0, gtk::PackType::Start);
                *shown.borrow_mut() = Shown::default();
            }
        }
        if in_call && tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                area = area.allocated_height(),
                webview = webview.allocated_height(),
                visible = area.is_visible(),
                "surface layout"
            );
        }
        if in_call {
            let (remote, local, image) = calls
                .with(|c| (c.frames().borrow().clone(), c.self_view().borrow().clone(), c.images().borrow().clone()))
                .unwrap_or_default();
            let mut s = shown.borrow_mut();
            let image_changed = !same(&s.image, &image);
            let changed = !same(&s.remote, &remote) || !same(&s.local, &local) || image_changed;
            if image_changed {
                let keep = matches!((&s.image_surface, &image), (Some((p, _)), Some(i)) if Arc::ptr_eq(p, &i.pixels));
                if !keep {
                    s.image_surface =
                        image.as_ref().and_then(|i| Some((i.pixels.clone(), crate::image_view::surface_of(i)?)));
                }
                s.image = image;
            }
            if changed {
                s.remote = remote;
                s.local = local;
                area.queue_draw();
            }
        }
        gtk::glib::ControlFlow::Continue
    });
    Ok(())
}

fn same<T>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}
