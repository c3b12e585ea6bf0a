//! Starting a project: the compliant settings, keys and secret every new project gets
//! (`compliant`), and the questions `bulletin init` asks (`questions`). The bundled example
//! itself is written by `cmd/init.rs`.

pub(crate) mod compliant;
pub(crate) mod questions;
