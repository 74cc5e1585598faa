//! Coalescing queued writes: a writer task that finds several units waiting sends them with one
//! write instead of one write (one system call, one TCP segment) each. Units stay whole and in
//! order, so frames never interleave (RFC 6455 §5.4) and a control-channel unit (`response`
//! plus its body, protocol §4.2) is never split.

/// How many bytes one coalesced write gathers at most before it goes out (the limit is checked
/// before each unit is added, so one batch may exceed it by one unit).
pub(crate) const COALESCE_LIMIT: usize = 256 * 1024;

/// Appends the units `next` yields to `first` until `next` has none ready or the batch holds
/// at least `limit` bytes; returns the batch. `next` must not wait: it is polled with what is
/// already queued (e.g. `flume::Receiver::try_recv`).
pub(crate) fn coalesce(
    first: Vec<u8>,
    limit: usize,
    mut next: impl FnMut() -> Option<Vec<u8>>,
) -> Vec<u8> {
    let mut batch = first;
    while batch.len() < limit {
        let Some(unit) = next() else { break };
        if batch.is_empty() {
            batch = unit;
        } else {
            batch.extend_from_slice(&unit);
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_units_join_the_first_in_order() {
        let mut queue = vec![b"c".to_vec(), b"b".to_vec()];
        let batch = coalesce(b"a".to_vec(), COALESCE_LIMIT, || queue.pop());
        assert_eq!(batch, b"abc");
        assert!(queue.is_empty());
    }

    #[test]
    fn nothing_queued_leaves_the_first_alone() {
        assert_eq!(coalesce(b"only".to_vec(), COALESCE_LIMIT, || None), b"only");
    }

    #[test]
    fn the_limit_stops_the_batch_and_leaves_the_rest_queued() {
        let mut queue = vec![b"cc".to_vec(), b"bb".to_vec()];
        let batch = coalesce(b"aa".to_vec(), 4, || queue.pop());
        assert_eq!(
            batch, b"aabb",
            "the unit that reached the limit is taken whole"
        );
        assert_eq!(queue, vec![b"cc".to_vec()]);
    }

    #[test]
    fn a_first_unit_at_the_limit_goes_alone() {
        let mut queue = vec![b"b".to_vec()];
        assert_eq!(coalesce(b"aaaa".to_vec(), 4, || queue.pop()), b"aaaa");
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn an_empty_first_unit_takes_the_next_without_copying() {
        let unit = b"next".to_vec();
        let ptr = unit.as_ptr();
        let mut queue = vec![unit];
        let batch = coalesce(Vec::new(), COALESCE_LIMIT, || queue.pop());
        assert_eq!(batch.as_ptr(), ptr);
    }
}
