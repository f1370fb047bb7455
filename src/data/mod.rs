//! Datasets: reading them, generating the synthetic one, augmenting and batching.
//!
//! Every dataset becomes one [`Dataset`]: images kept as bytes (per image three planes R, G, B of
//! `image_size x image_size`, row-major, like the CIFAR binary records) and `u32` labels, for a
//! train and a test split, with the normalisation and crop padding its training recipe uses
//! (SPEC section 3). Bytes keep a 60,000-image set at 184 MB and let a GPU upload it once and
//! augment there; [`augment`] and [`batches`] are the CPU path and define the exact semantics
//! (per-image random crop / flip / cutout parameters a GPU path can reuse).
//!
//! - [`spec`]: the command-line names (`synthetic-cifar10`, `cifar10:DIR`, `cifar100:DIR`,
//!   `folder:DIR`, `imagenet16:DIR`) and loading them.
//! - [`cifar`]: the CIFAR-10 / CIFAR-100 binary files.
//! - [`folder`]: `root/{train,test}/<class>/*.{jpg,jpeg,png}` image folders.
//! - [`pickle`] and [`imagenet16`]: a small Python-pickle reader and the ImageNet16-120 files.
//! - [`synthetic`]: Synthetic CIFAR-10 (the FEAR paper's appendix A.4), generated with sgemm and
//!   cached on disk.
//! - [`augment`]: per-image crop / flip / cutout / normalisation.
//! - [`batches`]: epoch shuffles and filling `[B,3,S,S]` batches.
//! - [`recipe`]: which augmentation a dataset and method train with (`--recipe paper|natsbench`).
pub mod augment;
pub mod batches;
pub mod cifar;
pub mod dataset;
pub mod folder;
pub mod imagenet16;
pub mod pickle;
pub mod recipe;
pub mod spec;
pub mod synthetic;

pub use augment::{Augment, ImageAug};
pub use batches::{epoch_order, fill_batch, num_batches, Batch, Batcher};
pub use dataset::{Dataset, Normalization, Split};
pub use recipe::{DatasetKind, Method, Recipe};
pub use spec::{DatasetSpec, LoadOptions};
