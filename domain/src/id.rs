//! Identifiers. An `OrderId` or `ItemId` you hold is valid: 1–64 characters of `[A-Za-z0-9._:-]`.

use std::fmt;

use serde::{Deserialize, Serialize};

pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_LEN} characters (got {0})")]
    TooLong(usize),
    #[error("may contain only letters, digits and . _ : - (found {0:?} at character {1})")]
    BadChar(char, usize),
}

fn check(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    let len = raw.chars().count();
    if len > MAX_ID_LEN {
        return Err(IdError::TooLong(len));
    }
    match raw.chars().enumerate().find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))) {
        Some((at, c)) => Err(IdError::BadChar(c, at + 1)),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                check(raw).map(|()| Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                check(&raw).map(|()| Self(raw))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The client-chosen identity of an order, e.g. `"6119"`.
    OrderId
);
id_type!(
    /// An item (product) identity, e.g. `"z3333"`.
    ItemId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_full_charset_up_to_64_characters() {
        assert!(OrderId::parse("6119").is_ok());
        assert!(OrderId::parse("A-z.0_9:x").is_ok());
        assert!(ItemId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_empty_too_long_and_foreign_characters() {
        assert_eq!(OrderId::parse(""), Err(IdError::Empty));
        assert_eq!(OrderId::parse(&"x".repeat(65)), Err(IdError::TooLong(65)));
        assert_eq!(ItemId::parse("a b"), Err(IdError::BadChar(' ', 2)));
        assert_eq!(ItemId::parse("'; DROP TABLE orders; --"), Err(IdError::BadChar('\'', 1)));
        assert_eq!(ItemId::parse("é"), Err(IdError::BadChar('é', 1)));
        assert_eq!(OrderId::parse("a/b"), Err(IdError::BadChar('/', 2)));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(OrderId::parse(&"é".repeat(65)), Err(IdError::TooLong(65)));
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<OrderId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<OrderId>("\"not ok\"").is_err());
    }
}
