//! Study material, extractive and local: sentences with their section and page, definitions
//! and key terms ([`text`], [`terms`]; front matter, reference lists, indexes and the like
//! left out by [`skip`]), centrality and neighbours over embeddings ([`rank`]), and the three
//! writers — [`cheatsheet`] (.docx), [`quiz`] (.pdf and quiz.json), [`flashcards`] (.json
//! with SM-2 state); [`check`] reads them back; [`llm`] is the optional summary and
//! drafts, which [`draft`] checks like extractive items. Over several documents,
//! [`course`] shares questions and cards out; [`anki`] (.apkg) and [`moodle`] (Moodle XML,
//! GIFT) are the formats other tools import. The stages that run them are
//! [`crate::stages::generate`] (each document) and [`crate::stages::study`] (on request).

pub mod anki;
pub mod cheatsheet;
pub mod check;
pub mod course;
pub mod draft;
pub mod flashcards;
pub mod llm;
pub mod moodle;
pub mod quiz;
pub mod rank;
pub mod skip;
pub mod terms;
pub mod text;
pub mod words;
