//! The number type leaves hold and rows accumulate in.
//!
//! Each reference runtime sums tree outputs in its own precision: onnxruntime and
//! XGBoost in `f32`, LightGBM in `f64`. Summing the same way keeps results within
//! rounding of theirs, so the evaluator is generic over it.

use std::fmt::Debug;
use std::ops::Add;

/// `f32` or `f64`.
pub(crate) trait Value:
    Copy + Debug + Default + PartialOrd + Add<Output = Self> + Send + Sync + 'static
{
    /// Zero.
    const ZERO: Self;
    /// Converts (rounding to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Widens.
    fn to_f64(self) -> f64;
    /// Converts (rounding to nearest for `f32`).
    fn to_f32(self) -> f32;
}

impl Value for f32 {
    const ZERO: Self = 0.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Value for f64 {
    const ZERO: Self = 0.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
}
