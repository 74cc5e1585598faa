pub async fn serve_accept(_hc: super::context::Hc, _accept: crate::proto::hc::messages::Accept) {}
