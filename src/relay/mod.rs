//! The self-hostable relay: the service side of Hybrid Connections (spec Appendix A).

pub mod registry;
