use super::*;
use crate::Transmit;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("non-blocking");
    socket
}

/// A datagram whose bytes say which it is: `index` repeated, `len` long.
fn datagram(index: usize, len: usize) -> Vec<u8> {
    vec![index as u8; len]
}

/// Queues `datagrams` (destination, bytes) into `batch`, as a core's poll_transmit would.
fn fill(batch: &mut SendBatch, datagrams: &[(SocketAddr, Vec<u8>)]) -> bool {
    let mut queue = datagrams.iter();
    batch.fill(|buf| {
        let (to, bytes) = queue.next()?;
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Transmit {
            to: *to,
            len: bytes.len(),
            source_as_for: None,
        })
    })
}

/// Datagrams as (from, length, first byte, whether every byte equals the first): short to
/// print when a comparison fails, and as exact as the bytes for datagrams made by [`datagram`].
type Summary = Vec<(SocketAddr, usize, Option<u8>, bool)>;

fn summary(datagrams: &[(SocketAddr, Vec<u8>)]) -> Summary {
    datagrams
        .iter()
        .map(|(from, bytes)| {
            let first = bytes.first().copied();
            (
                *from,
                bytes.len(),
                first,
                bytes.iter().all(|b| Some(*b) == first),
            )
        })
        .collect()
}

/// Receives until `count` datagrams arrived at `socket` (or 5 s passed); returns them and how
/// many receive buffers they came in.
fn receive(udp: &Udp, socket: &UdpSocket, count: usize) -> (Summary, usize) {
    let mut batch = RecvBatch::new();
    let mut got = Vec::new();
    let mut buffers = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < count && Instant::now() < deadline {
        match batch.recv(udp, socket) {
            Ok(filled) => {
                buffers += filled;
                batch.for_each(|from, bytes| got.push((from, bytes.to_vec())));
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                std::thread::yield_now();
            }
            Err(error) => panic!("recv: {error}"),
        }
    }
    (summary(&got), buffers)
}

#[test]
fn datagrams_to_several_destinations_arrive_whole_and_in_order() {
    let (sender, a, b) = (socket(), socket(), socket());
    let (udp, udp_a, udp_b) = (
        Udp::new(&sender).unwrap(),
        Udp::new(&a).unwrap(),
        Udp::new(&b).unwrap(),
    );
    let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // Different sizes, alternating destinations: no run, one sendmmsg.
    let datagrams: Vec<_> = (0..10)
        .map(|i| (if i % 2 == 0 { to_a } else { to_b }, datagram(i, 100 + i)))
        .collect();
    let mut batch = SendBatch::new();
    assert!(!fill(&mut batch, &datagrams), "the core ran dry");
    assert_eq!(batch.pending(), 10);
    batch
        .flush(&udp, &sender, &ReplySources::default())
        .unwrap();
    assert_eq!(batch.pending(), 0);
    let from = sender.local_addr().unwrap();
    let expect = |to| -> Summary {
        let sent: Vec<_> = datagrams
            .iter()
            .filter(|(t, _)| *t == to)
            .map(|(_, bytes)| (from, bytes.clone()))
            .collect();
        summary(&sent)
    };
    assert_eq!(receive(&udp_a, &a, 5).0, expect(to_a));
    assert_eq!(receive(&udp_b, &b, 5).0, expect(to_b));
}

#[test]
fn a_run_of_equal_pieces_goes_as_one_gso_send_and_is_cut_apart_on_receipt() {
    let (sender, receiver) = (socket(), socket());
    let (udp, udp_rx) = (Udp::new(&sender).unwrap(), Udp::new(&receiver).unwrap());
    let to = receiver.local_addr().unwrap();
    // 1,436-byte datagrams (1,400-byte pieces behind the header), the last one shorter, as
    // at the end of a chunk; then one to elsewhere, then another run.
    let other = socket();
    let mut datagrams: Vec<_> = (0..40).map(|i| (to, datagram(i, 1436))).collect();
    datagrams.push((to, datagram(40, 1000)));
    datagrams.push((other.local_addr().unwrap(), datagram(41, 1436)));
    datagrams.extend((42..60).map(|i| (to, datagram(i, 1436))));
    let mut batch = SendBatch::new();
    fill(&mut batch, &datagrams);
    if udp.gso_segments() > 1 {
        assert_eq!(
            batch.run_at(0, udp.gso_segments()),
            41,
            "the short one ends the run"
        );
        assert_eq!(batch.run_at(41, udp.gso_segments()), 1);
    }
    batch
        .flush(&udp, &sender, &ReplySources::default())
        .unwrap();
    let from = sender.local_addr().unwrap();
    let sent: Vec<_> = datagrams
        .iter()
        .filter(|(t, _)| *t == to)
        .map(|(_, bytes)| (from, bytes.clone()))
        .collect();
    let expect = summary(&sent);
    let (got, buffers) = receive(&udp_rx, &receiver, expect.len());
    assert_eq!(got, expect);
    if udp.gso_segments() > 1 && udp_rx.gro_segments() > 1 {
        // On loopback a GSO run reaches a GRO socket whole: 59 datagrams in 2 buffers.
        assert!(
            buffers < got.len() / 4,
            "{buffers} buffers for {} datagrams",
            got.len()
        );
    }
}

#[test]
fn grouped_replies_go_by_destination_and_size_in_runs() {
    let (sender, a, b) = (socket(), socket(), socket());
    let (udp, udp_a, udp_b) = (
        Udp::new(&sender).unwrap(),
        Udp::new(&a).unwrap(),
        Udp::new(&b).unwrap(),
    );
    let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // A tracker's replies: two destinations and two sizes, interleaved.
    let datagrams: Vec<_> = (0..40)
        .map(|i| {
            let to = if i % 2 == 0 { to_a } else { to_b };
            (to, datagram(i, if i % 3 == 0 { 16 } else { 200 }))
        })
        .collect();
    let mut batch = SendBatch::new();
    batch.group_replies();
    fill(&mut batch, &datagrams);
    let first = batch.queued[0];
    assert_eq!(first.len, 200, "longest first");
    if udp.gso_segments() > 1 {
        assert!(
            batch.run_at(0, udp.gso_segments()) > 5,
            "runs of equal replies"
        );
    }
    batch
        .flush(&udp, &sender, &ReplySources::default())
        .unwrap();
    let from = sender.local_addr().unwrap();
    for (to, udp_rx, rx) in [(to_a, &udp_a, &a), (to_b, &udp_b, &b)] {
        let sent: Vec<_> = datagrams
            .iter()
            .filter(|(t, _)| *t == to)
            .map(|(_, bytes)| (from, bytes.clone()))
            .collect();
        let mut got = receive(udp_rx, rx, sent.len()).0;
        // Every reply arrives once, whole; only the order may differ.
        let mut want = summary(&sent);
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }
}

#[test]
fn a_refused_datagram_is_dropped_and_the_rest_is_sent() {
    let (sender, receiver) = (socket(), socket());
    let (udp, udp_rx) = (Udp::new(&sender).unwrap(), Udp::new(&receiver).unwrap());
    let to = receiver.local_addr().unwrap();
    // An IPv4 socket cannot send to an IPv6 address: the kernel refuses that one datagram.
    let refused: SocketAddr = "[::1]:9".parse().unwrap();
    let datagrams = vec![
        (to, datagram(0, 10)),
        (refused, datagram(1, 11)),
        (to, datagram(2, 12)),
    ];
    let mut batch = SendBatch::new();
    fill(&mut batch, &datagrams);
    batch
        .flush(&udp, &sender, &ReplySources::default())
        .unwrap();
    assert_eq!(batch.pending(), 0);
    let from = sender.local_addr().unwrap();
    let (got, _) = receive(&udp_rx, &receiver, 2);
    assert_eq!(
        got,
        summary(&[(from, datagram(0, 10)), (from, datagram(2, 12))])
    );
}

#[test]
fn a_batch_stops_filling_at_its_limit() {
    let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let datagrams: Vec<_> = (0..SEND_BATCH_MAX + 1)
        .map(|i| (to, datagram(i, 10)))
        .collect();
    let mut batch = SendBatch::new();
    assert!(fill(&mut batch, &datagrams), "full: the core may have more");
    assert_eq!(batch.pending(), SEND_BATCH_MAX);
    // By bytes too: 64 KiB datagrams fill it after SEND_BATCH_BYTES_MAX.
    let big: Vec<_> = (0..SEND_BATCH_MAX)
        .map(|i| (to, datagram(i, DATAGRAM_BYTES_MAX)))
        .collect();
    let mut batch = SendBatch::new();
    assert!(fill(&mut batch, &big));
    assert_eq!(
        batch.pending(),
        SEND_BATCH_BYTES_MAX / DATAGRAM_BYTES_MAX + 1
    );
}

#[test]
fn interface_addresses_include_loopback_and_stop_at_the_limit() {
    let all = interface_addresses(crate::node::INTERFACE_ADDRESSES_MAX).unwrap();
    assert!(
        all.contains(&std::net::IpAddr::from([127, 0, 0, 1])),
        "no 127.0.0.1 among {all:?}"
    );
    assert_eq!(interface_addresses(1).unwrap().len(), 1);
}
