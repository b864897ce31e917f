//! Parse and encode throughput, side by side with `eventsource-stream`, the most used SSE parsing
//! crate, on the same bytes in the same chunks.
//!
//! Run: `cargo bench -p herald-wire --bench wire`. Figures: docs/benchmarks.md.

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use herald_wire::{Event, Parser};

/// Network reads arrive in chunks of about this size.
const CHUNK: usize = 16 * 1024;

/// About 100-byte events as a chat or a notification feed sends them.
fn small_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(format!(
                r#"{{"user":"ada","text":"hello number {i:06}","room":"r1"}}"#
            ))
            .with_type("chat")
            .and_then(|e| e.with_id(format!("1700000000000-{i}")))
            .expect("valid")
        })
        .collect()
}

/// About 16 KiB events as a dashboard snapshot sends them.
fn large_events(n: usize) -> Vec<Event> {
    let body = "0123456789abcdef".repeat(1024);
    (0..n)
        .map(|i| {
            Event::new(body.clone())
                .with_id(format!("1700000000000-{i}"))
                .expect("valid")
        })
        .collect()
}

fn stream_of(events: &[Event]) -> Vec<Bytes> {
    let mut all = Vec::new();
    for event in events {
        all.extend_from_slice(&event.encode());
    }
    all.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

fn parse_herald(chunks: &[Bytes]) -> usize {
    let mut parser = Parser::new();
    let mut count = 0;
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(event) = parser.next_event() {
            black_box(event.expect("well formed"));
            count += 1;
        }
    }
    count
}

fn parse_eventsource_stream(rt: &tokio::runtime::Runtime, chunks: &[Bytes]) -> usize {
    rt.block_on(async {
        let input = futures_util::stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>));
        let mut events = input.eventsource();
        let mut count = 0;
        while let Some(event) = events.next().await {
            black_box(event.expect("well formed"));
            count += 1;
        }
        count
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (name, events) in [
        ("small_100B", small_events(10_000)),
        ("large_16KiB", large_events(64)),
    ] {
        let chunks = stream_of(&events);
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        assert_eq!(parse_herald(&chunks), events.len());
        assert_eq!(parse_eventsource_stream(&rt, &chunks), events.len());

        let mut group = c.benchmark_group(format!("parse/{name}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("herald-wire", |b| b.iter(|| parse_herald(&chunks)));
        group.bench_function("eventsource-stream", |b| {
            b.iter(|| parse_eventsource_stream(&rt, &chunks))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("encode/{name}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("herald-wire", |b| {
            b.iter(|| {
                for event in &events {
                    black_box(event.encode());
                }
            })
        });
        group.finish();
        println!(
            "{name}: {} events, {bytes} bytes, {:.1} bytes/event",
            events.len(),
            bytes as f64 / events.len() as f64
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
