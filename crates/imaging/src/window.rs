//! Window/level: which modality values the display's 256 grey levels cover. The mapping is
//! dicom-pixeldata's (DICOM PS3.3 C.11.2.1.2, linear by default); the presets are the usual CT ones.

use dicom_pixeldata::{VoiLutFunction, WindowLevel, WindowLevelTransform};

/// A window: the centre and width of the value range shown, and the function that maps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Window centre (level), in modality units (Hounsfield for CT).
    pub center: f64,
    /// Window width, in modality units (at least 1).
    pub width: f64,
    /// Linear (the default), exact linear, or sigmoid, as the file asks.
    pub function: Function,
}

/// The VOI LUT function (DICOM C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Function {
    /// LINEAR.
    #[default]
    Linear,
    /// LINEAR_EXACT.
    LinearExact,
    /// SIGMOID.
    Sigmoid,
}

/// The consultant's presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// CT lung: W 1500, L -600.
    Lung,
    /// CT soft tissue (mediastinum, abdomen): W 400, L 40.
    SoftTissue,
    /// CT bone: W 1800, L 400.
    Bone,
    /// CT brain: W 80, L 40.
    Brain,
}

impl Preset {
    /// The preset's window.
    pub fn window(self) -> Window {
        let (width, center) = match self {
            Preset::Lung => (1500.0, -600.0),
            Preset::SoftTissue => (400.0, 40.0),
            Preset::Bone => (1800.0, 400.0),
            Preset::Brain => (80.0, 40.0),
        };
        Window::linear(center, width)
    }

    /// Parses a preset's wire name (lung, soft_tissue, bone, brain).
    pub fn from_name(name: &str) -> Option<Preset> {
        Some(match name {
            "lung" => Preset::Lung,
            "soft_tissue" => Preset::SoftTissue,
            "bone" => Preset::Bone,
            "brain" => Preset::Brain,
            _ => return None,
        })
    }
}

impl Window {
    /// A linear window; a width under 1 is taken as 1 (DICOM requires >= 1).
    pub fn linear(center: f64, width: f64) -> Window {
        Window { center, width: width.max(1.0), function: Function::Linear }
    }

    /// A window covering `min..=max` exactly.
    pub fn covering(min: f64, max: f64) -> Window {
        Window::linear((min + max) / 2.0 + 0.5, (max - min).max(0.0) + 1.0)
    }

    /// The 8-bit mapping for this window.
    pub(crate) fn transform(self) -> Transform {
        let function = match self.function {
            Function::Linear => VoiLutFunction::Linear,
            Function::LinearExact => VoiLutFunction::LinearExact,
            Function::Sigmoid => VoiLutFunction::Sigmoid,
        };
        Transform(WindowLevelTransform::new(function, WindowLevel { center: self.center, width: self.width.max(1.0) }))
    }

    /// The display grey level (0..=255) of one modality value, before any MONOCHROME1 inversion.
    pub fn display(self, value: f64) -> u8 {
        self.transform().apply(value as f32)
    }
}

pub(crate) struct Transform(WindowLevelTransform);

impl Transform {
    pub(crate) fn apply(&self, value: f32) -> u8 {
        let y = self.0.apply(f64::from(value), 255.0);
        // The transform stays within 0..=y_max; the clamp keeps a NaN input from becoming anything
        // but black.
        y.round().clamp(0.0, 255.0) as u8
    }
}
