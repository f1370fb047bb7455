//! Hand-made image features for FEAR's shallow learner (SPEC section 4.1).
//!
//! - [`hog`]: Histogram of Oriented Gradients exactly as scikit-image computes it on a 3-channel
//!   image (`hog(img, 9, (8, 8), (3, 3), 'L2-Hys', channel_axis=-1)`), over our planar u8 images.
pub mod hog;

pub use hog::{feature_len, hog_dataset, hog_features, HogParams};
