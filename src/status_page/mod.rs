//! The operators' status pages (docs/operations.md "Status page"), shared by the daemon's and
//! the relay's admin endpoints: one self-contained HTML document per request, readable without
//! JavaScript, refreshing itself, served with a strict Content-Security-Policy ([`html`]), and
//! the "last minute" figures computed from periodic samples of latency histograms
//! ([`window`]). Nothing here does I/O; the admin endpoints gather the figures.

pub(crate) mod html;
pub(crate) mod window;
