//! The data every stage shares: the page model with its geometry and the per-document
//! files ([`workdir`]), and chunks ([`chunk`]).

pub mod chunk;
pub mod workdir;
