//! The cause of a failure below the actors, kept whole.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Why the store (or the redo log) failed, as the error itself rather than
/// its text, so the edge that logs it shows the whole chain of causes. It is
/// cheap to clone because one failed commit answers every batch in its group.
#[derive(Clone)]
pub struct Fault(Arc<dyn Error + Send + Sync + 'static>);

impl Fault {
    /// A fault caused by `error`.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Fault(Arc::new(error))
    }

    /// A fault that `message` describes, caused by `source`.
    pub fn context(message: impl Into<String>, source: impl Error + Send + Sync + 'static) -> Self {
        Fault(Arc::new(Context {
            message: message.into(),
            source: Box::new(source),
        }))
    }

    /// A fault with no underlying error (a stored value that does not parse,
    /// a writer that already failed).
    pub fn msg(message: impl Into<String>) -> Self {
        Fault(Arc::new(Described(message.into())))
    }

    /// The error itself, when it is a `T` (not its causes).
    pub fn downcast_ref<T: Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Faults compare by what they say (errors themselves rarely implement
/// equality); this lets the domain errors that carry one stay comparable.
impl PartialEq for Fault {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.to_string() == other.to_string()
    }
}

impl Eq for Fault {}

impl Error for Fault {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// `error` and its causes, joined by `: ` (for a log line).
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[derive(Debug)]
struct Described(String);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Described {}

#[derive(Debug)]
struct Context {
    message: String,
    source: Box<dyn Error + Send + Sync + 'static>,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for Context {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_chain_survives_a_clone() {
        let io = std::io::Error::other("disk full");
        let fault = Fault::context("the redo log could not be written", io).clone();
        assert_eq!(fault.to_string(), "the redo log could not be written");
        assert_eq!(fault.source().unwrap().to_string(), "disk full");
        assert_eq!(Fault::msg("gone").to_string(), "gone");
        assert_eq!(
            describe(&fault),
            "the redo log could not be written: disk full"
        );
        assert!(Fault::msg("gone").source().is_none());
    }
}
