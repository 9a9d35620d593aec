//! Text analysis the stages share: the order a page's blocks are read in
//! ([`reading_order`]) and a text's language ([`language`]).

pub mod language;
pub mod reading_order;
