//! Shared access rights and rules (protocol §3.4).
//!
//! A rule has a name, a key and a set of rights. `Manage` implies `Listen` and `Send` (Service
//! Bus convention).

use std::fmt;
use std::str::FromStr;

use ring::hmac;

use crate::auth::sas;
use crate::secret::Secret;

/// One right a shared access rule can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Right {
    /// Open a control channel (`sb-hc-action=listen`).
    Listen,
    /// Connect as a sender (`sb-hc-action=connect`) or send HTTP requests.
    Send,
    /// Manage the entity; implies Listen and Send.
    Manage,
}

impl Right {
    /// The name used by Azure ("Listen", "Send", "Manage").
    pub fn name(self) -> &'static str {
        match self {
            Right::Listen => "Listen",
            Right::Send => "Send",
            Right::Manage => "Manage",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Right::Listen => 0b001,
            Right::Send => 0b010,
            Right::Manage => 0b100,
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A right name that is none of Listen, Send, Manage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRight {
    pub name: String,
}

impl fmt::Display for UnknownRight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown right {:?}: expected Listen, Send or Manage",
            self.name
        )
    }
}

impl std::error::Error for UnknownRight {}

impl FromStr for Right {
    type Err = UnknownRight;

    /// Parses "Listen", "Send" or "Manage", case-insensitively.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Right::Listen, Right::Send, Right::Manage]
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownRight {
                name: name.to_owned(),
            })
    }
}

/// A set of rights.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights {
    bits: u8,
}

impl Rights {
    /// No right at all.
    pub const NONE: Rights = Rights { bits: 0 };

    /// The set holding exactly `rights`.
    pub fn of(rights: &[Right]) -> Rights {
        rights.iter().fold(Rights::NONE, |set, &r| set.with(r))
    }

    /// This set plus `right`.
    pub fn with(self, right: Right) -> Rights {
        Rights {
            bits: self.bits | right.bit(),
        }
    }

    /// Whether `right` was put into the set (without the Manage implication).
    pub fn contains(self, right: Right) -> bool {
        self.bits & right.bit() != 0
    }

    /// Whether the set allows `needed`: held directly, or implied by Manage.
    pub fn grants(self, needed: Right) -> bool {
        self.contains(needed) || self.contains(Right::Manage)
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(
                [Right::Listen, Right::Send, Right::Manage]
                    .into_iter()
                    .filter(|&r| self.contains(r)),
            )
            .finish()
    }
}

/// A shared access rule: a name, the key tokens are signed with, and the rights it grants.
///
/// Only the ready HMAC key is kept; its `Debug` shows the algorithm, never the key.
#[derive(Debug, Clone)]
pub struct Rule {
    name: String,
    rights: Rights,
    mac_key: hmac::Key,
}

impl Rule {
    /// A rule named `name` (the token's `skn`) with `key` (used as UTF-8 text, protocol §3.3).
    pub fn new(name: impl Into<String>, key: &Secret, rights: Rights) -> Rule {
        Rule {
            name: name.into(),
            rights,
            mac_key: sas::hmac_key(key),
        }
    }

    /// The rule name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rights the rule grants.
    pub fn rights(&self) -> Rights {
        self.rights
    }

    /// Whether `tag` is the HMAC of `message` under this rule's key, compared in constant time.
    pub(super) fn signed(&self, message: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.mac_key, message, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_implies_listen_and_send() {
        let manage = Rights::of(&[Right::Manage]);
        assert!(manage.grants(Right::Listen));
        assert!(manage.grants(Right::Send));
        assert!(manage.grants(Right::Manage));
        assert!(!manage.contains(Right::Listen));
    }

    #[test]
    fn listen_does_not_imply_send_or_manage() {
        let listen = Rights::of(&[Right::Listen]);
        assert!(listen.grants(Right::Listen));
        assert!(!listen.grants(Right::Send));
        assert!(!listen.grants(Right::Manage));
    }

    #[test]
    fn send_does_not_imply_listen() {
        let send = Rights::NONE.with(Right::Send);
        assert!(send.grants(Right::Send));
        assert!(!send.grants(Right::Listen));
    }

    #[test]
    fn none_grants_nothing() {
        for r in [Right::Listen, Right::Send, Right::Manage] {
            assert!(!Rights::NONE.grants(r));
        }
    }

    #[test]
    fn rights_debug_lists_members() {
        let set = Rights::of(&[Right::Send, Right::Listen]);
        assert_eq!(format!("{set:?}"), "{Listen, Send}");
    }

    #[test]
    fn right_parses_case_insensitively() {
        assert_eq!("listen".parse(), Ok(Right::Listen));
        assert_eq!("SEND".parse(), Ok(Right::Send));
        assert_eq!("Manage".parse(), Ok(Right::Manage));
        assert_eq!(
            "Read".parse::<Right>(),
            Err(UnknownRight {
                name: "Read".into()
            })
        );
    }

    #[test]
    fn rule_debug_does_not_show_the_key() {
        let key = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
        let rule = Rule::new("r", &Secret::new(key), Rights::of(&[Right::Listen]));
        let text = format!("{rule:?}");
        assert!(!text.contains(key), "{text}");
        assert!(!text.contains("Kx5v"), "{text}");
    }
}
