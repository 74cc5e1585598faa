//! HTTP/1.1 head parsing and chunked decoding (src/proto/http1).
//!
//! `cargo bench --bench http1 -- --measurement-time 2 --warm-up-time 1`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hycod::proto::http1::{
    parse_request_head, parse_response_head, write_chunk, write_last_chunk, ChunkedDecoder, Limits,
};

/// A typical request: request line and 10 header fields.
fn request_with_10_headers() -> Vec<u8> {
    b"POST /hyco/api/orders?top=5&skip=10 HTTP/1.1\r\n\
      Host: contoso.servicebus.windows.net\r\n\
      User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n\
      Accept: application/json, text/plain, */*\r\n\
      Accept-Language: en-US,en;q=0.9\r\n\
      Accept-Encoding: gzip, deflate, br\r\n\
      Content-Type: application/json; charset=utf-8\r\n\
      Content-Length: 128\r\n\
      ServiceBusAuthorization: SharedAccessSignature sr=http%3a%2f%2fcontoso&sig=abc%3d&se=1700000000&skn=RootManageSharedAccessKey\r\n\
      X-Request-Id: 4f2c9a1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b\r\n\
      Connection: keep-alive\r\n\r\n"
        .to_vec()
}

/// A response head with 30 header fields.
fn response_with_30_headers() -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..30 {
        head.extend_from_slice(
            format!("X-Header-{i:02}: value-{i:02}; some=parameter, another=entry\r\n").as_bytes(),
        );
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("http1_head");

    let request = request_with_10_headers();
    group.throughput(Throughput::Bytes(
        u64::try_from(request.len()).expect("fits"),
    ));
    group.bench_function("parse_request_10_headers", |b| {
        b.iter(|| parse_request_head(black_box(&request), &limits))
    });

    let response = response_with_30_headers();
    group.throughput(Throughput::Bytes(
        u64::try_from(response.len()).expect("fits"),
    ));
    group.bench_function("parse_response_30_headers", |b| {
        b.iter(|| parse_response_head(black_box(&response), &limits))
    });
    group.finish();
}

fn chunked(c: &mut Criterion) {
    const BODY: usize = 1024 * 1024;
    const CHUNK: usize = 8 * 1024;
    let data: Vec<u8> = (0..=255u8).cycle().take(BODY).collect();
    let mut wire = Vec::with_capacity(BODY + BODY / CHUNK * 16);
    for piece in data.chunks(CHUNK) {
        write_chunk(&mut wire, piece);
    }
    write_last_chunk(&mut wire);

    let mut group = c.benchmark_group("http1_chunked");
    group.throughput(Throughput::Bytes(u64::try_from(BODY).expect("fits")));
    group.bench_function("decode_1MiB_in_8KiB_chunks", |b| {
        b.iter(|| {
            let mut decoder = ChunkedDecoder::new();
            let mut input = black_box(wire.as_slice());
            let mut payload = 0usize;
            while !decoder.is_done() {
                let step = decoder.decode(input).expect("valid chunked body");
                payload += step.payload.map_or(0, <[u8]>::len);
                input = &input[step.consumed..];
            }
            assert_eq!(payload, BODY);
        })
    });
    group.finish();
}

criterion_group!(benches, heads, chunked);
criterion_main!(benches);
