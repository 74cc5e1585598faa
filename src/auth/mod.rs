//! Authentication: connection strings (protocol §3.5), SAS token signing (§3.2–§3.4, §3.6) and the
//! relay-side token verifier (§3.4).

pub mod connection_string;
pub mod sas;
pub mod verify;
