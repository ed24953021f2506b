//! Checks that run before a sparky.yaml reaches the YAML parser, so that no file can
//! make parsing slow or large.
//!
//! Two things cost more than the size of the text:
//! - Nesting. libyaml (inside serde_yaml_ng) re-examines every open flow collection
//!   (`[`, `{`) for each token it reads, so time grows with tokens × depth: 78 KB of
//!   `[[[[…` takes 13 s or more, 156 KB minutes. And serde_yaml_ng loads every event
//!   before deserializing, so its own recursion limit comes too late to help.
//! - Aliases. Each `*name` is expanded again wherever it is used (one small file can
//!   stand for billions of values, "billion laughs"); serde_yaml_ng caps the number of
//!   jumps, not the values they produce, so a few thousand aliases of a long list still
//!   mean gigabytes.
//!
//! So [`check`] first measures nesting with a [`Scanner`], a linear walk over the text
//! that follows libyaml's scanner rule for rule where tokens begin and end (only
//! positions, no values), and refuses anything nested deeper than [`MAX_NESTING`]
//! before libyaml sees it. Then, only if the text has aliases, it walks the expanded
//! document once, counting values without keeping them, and refuses more than
//! [`MAX_VALUES`].
//!
//! Where libyaml would stop with a syntax error, the walk goes on as best it can: what
//! follows such an error is never parsed, so counting it only errs on the side of
//! refusing.

use std::cell::Cell;

use serde::de::DeserializeSeed;

use self::{scanner::Scanner, values::Count};

mod scanner;
mod values;

/// How deeply sparky.yaml may nest: bracket levels (`[`, `{`) plus indentation levels
/// (block mappings and sequences), counted together. Configs use four or five.
pub const MAX_NESTING: usize = 32;

/// How many values (scalars, lists and mappings) a sparky.yaml that uses aliases may
/// expand to, each alias counting its whole target again.
pub const MAX_VALUES: usize = 100_000;

/// Why a text is refused before parsing.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Nested deeper than [`MAX_NESTING`]; `line` (1-based) is where it got too deep.
    TooDeep { line: usize },
    /// Its aliases expand to more than [`MAX_VALUES`] values.
    TooManyValues,
}

/// Refuses `source` if parsing it could take more time or memory than its size
/// warrants; see the module documentation.
pub fn check(source: &str) -> Result<(), Refusal> {
    let shape = Scanner::new(source).run()?;
    if shape.aliases > 0 {
        let seen = Cell::new(0);
        // Other errors are for the real parse to report. It expands no more than this
        // walk did before stopping: it goes through the same document in the same
        // order, and stops at the same errors or sooner.
        let _ = Count(&seen).deserialize(serde_yaml_ng::Deserializer::from_str(source));
        if seen.get() > MAX_VALUES {
            return Err(Refusal::TooManyValues);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
