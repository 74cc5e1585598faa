//! The sender side of azbridge's preamble (for `azbridge -T` listeners): write the port name,
//! wait for the answer, as `azbridge -L` does (`TcpLocalForwardBridge.cs` lines 200–235).

use std::fmt;
use std::time::Duration;

use super::{read_prefix, write_message, Prefix, PrefixError};
use crate::io::stream::Stream;
use crate::proto::azbridge::{preamble, Answer, CollectError};
use crate::proto::ws::Encoder;

/// Why an azbridge listener did not take the stream.
#[derive(Debug)]
pub(crate) enum Refused {
    /// It closed the stream without an answer: no forwarder has the port name, or its target
    /// could not be connected (hycod's listener), or it failed.
    NoAnswer,
    /// It answered with a refusal.
    Answered(Answer),
    /// The port name does not fit the preamble (the configuration prevents this).
    PortName,
    /// The preamble could not be written.
    Write(std::io::Error),
    /// The answer could not be read.
    Read(PrefixError),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAnswer => f.write_str(
                "the azbridge listener closed the stream without acknowledging the port name \
                 (no forwarder for it, or its target is down)",
            ),
            Self::Answered(answer) => answer.fmt(f),
            Self::PortName => f.write_str("the port name is longer than 255 bytes"),
            Self::Write(e) => write!(f, "writing the azbridge preamble failed: {e}"),
            Self::Read(e) => write!(f, "reading the azbridge answer failed: {e}"),
        }
    }
}

impl std::error::Error for Refused {}

/// Announces `port_name` on `stream` (after `leftover`, bytes read past the handshake) and
/// waits up to `timeout` for the listener's `[1, 0, 0]`. The returned [`Prefix`] holds the
/// payload and the frames that followed the answer.
pub(crate) async fn open(
    stream: &mut Stream,
    encoder: &mut Encoder,
    leftover: &[u8],
    port_name: &str,
    timeout: Duration,
) -> Result<Prefix, Refused> {
    let bytes = preamble(port_name).ok_or(Refused::PortName)?;
    write_message(stream, encoder, &bytes)
        .await
        .map_err(Refused::Write)?;
    let prefix = match read_prefix(stream, leftover, |_| 3, timeout).await {
        Ok(prefix) => prefix,
        Err(PrefixError::Eof | PrefixError::Protocol(CollectError::Closed)) => {
            return Err(Refused::NoAnswer)
        }
        Err(error) => return Err(Refused::Read(error)),
    };
    let mut answer = [0u8; 3];
    answer.copy_from_slice(&prefix.collected.bytes);
    match Answer::parse(answer) {
        Answer::Accepted => Ok(prefix),
        refused => Err(Refused::Answered(refused)),
    }
}
