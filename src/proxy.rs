//! HTTP CONNECT proxies for relay connections (docs/operations.md, "Corporate networks"): the
//! proxy URL form ([`url`]), the environment's proxy and `NO_PROXY` by curl's rules ([`env`],
//! [`no_proxy`]), and the CONNECT exchange with Basic credentials ([`connect`]).

pub mod connect;
pub mod env;
pub mod no_proxy;
pub mod url;

pub use connect::{ProxyError, ProxyRoute};
pub use no_proxy::NoProxy;
pub use url::ProxyAddress;
