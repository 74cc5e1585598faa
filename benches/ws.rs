//! WebSocket codec benchmarks: masking (fast vs reference) and in-place frame decoding.
//!
//! Run: `cargo bench --bench ws -- --measurement-time 2 --warm-up-time 1`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hycod::proto::ws::encode::encode_frame_in_place;
use hycod::proto::ws::mask::{apply_mask, apply_mask_reference};
use hycod::proto::ws::{Decoder, Limits, OpCode, Role, MAX_HEADER_LEN};

const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in [64usize, 1024, 64 * 1024, 1024 * 1024] {
        let mut buf = vec![0x5Au8; size];
        group.throughput(Throughput::Bytes(u64::try_from(size).expect("fits")));
        group.bench_with_input(BenchmarkId::new("fast", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 1));
        });
        group.bench_with_input(BenchmarkId::new("reference", size), &size, |b, _| {
            b.iter(|| apply_mask_reference(black_box(&mut buf), KEY, 1));
        });
    }
    group.finish();
}

/// Masked binary frames as a client sends them, back to back.
fn client_frames(count: usize, payload_len: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..count {
        let mut frame = vec![0u8; MAX_HEADER_LEN + payload_len];
        frame[MAX_HEADER_LEN..].fill(u8::try_from(i % 251).expect("fits"));
        let range = encode_frame_in_place(
            &mut frame,
            MAX_HEADER_LEN..MAX_HEADER_LEN + payload_len,
            true,
            OpCode::Binary,
            Some(KEY),
        )
        .expect("encodable");
        wire.extend_from_slice(&frame[range]);
    }
    wire
}

/// Decodes every frame in `wire`. Decoding unmasks in place, so the next run masks again:
/// binary payloads stay valid either way and the work is identical.
fn decode_all(wire: &mut [u8]) -> usize {
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let mut pos = 0;
    let mut events = 0;
    while pos < wire.len() {
        let (consumed, event) = decoder.decode(&mut wire[pos..]).expect("valid");
        if let Some(event) = event {
            black_box(event);
            events += 1;
        }
        pos += consumed;
    }
    events
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let mut large = client_frames(1, 64 * 1024);
    group.throughput(Throughput::Bytes(64 * 1024));
    group.bench_function("masked_binary_64KiB", |b| {
        b.iter(|| decode_all(black_box(&mut large)));
    });
    let mut small = client_frames(1000, 32);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000_masked_binary_frames_32B", |b| {
        b.iter(|| decode_all(black_box(&mut small)));
    });
    group.finish();
}

criterion_group!(benches, mask, decode);
criterion_main!(benches);
