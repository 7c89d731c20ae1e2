//! Reports of a smoke run: the Smolder-shaped console text, JUnit XML and JSON.
pub mod console;
pub mod json;
pub mod junit;
