pub async fn serve_request(
    _hc: super::context::Hc,
    _r: crate::proto::hc::messages::Request,
    _b: Option<Vec<u8>>,
    _w: super::context::ControlWriter,
) {
}
