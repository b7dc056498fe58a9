//! Where the lexer looks variables up.
use std::collections::{BTreeMap, HashMap};

/// A source of variable values for expansion.
///
/// Lookups are case-sensitive, as on Linux. `None` means unset, which is
/// different from set to the empty string (`${v-x}` versus `${v:-x}`).
pub trait EnvLookup {
    /// The value of `name`, or `None` when it is not set.
    fn lookup(&self, name: &str) -> Option<&str>;
}

/// An environment with no variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl EnvLookup for EmptyEnv {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// An ordered `KEY=value` list; a later entry for the same key wins.
impl EnvLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl EnvLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl EnvLookup for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl EnvLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<T: EnvLookup + ?Sized> EnvLookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}
