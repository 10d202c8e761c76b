use super::*;

const S: Duration = Duration::from_secs(1);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn tracker(waiting_since: Option<Instant>) -> TrackerHeard {
    TrackerHeard {
        addr: addr(12345),
        registered: true,
        waiting_since,
    }
}

fn view(node_id: u32, active: bool, evidence: &PeerEvidence) -> PeerView<'_> {
    PeerView {
        node_id,
        addr: addr(4000 + node_id as u16),
        active,
        datagram_bytes: 1_232,
        evidence,
    }
}

#[test]
fn loss_counts_the_last_outcomes_only() {
    let mut evidence = PeerEvidence::default();
    let now = Instant::now();
    assert_eq!(evidence.loss(), (0, 0));
    evidence.on_lost(3, 0, 1_472);
    let _ = evidence.on_piece(now, 1_000);
    assert_eq!(evidence.loss(), (3, 4));
    assert_eq!(evidence.lossy(), None, "too few outcomes to tell");
    for _ in 0..LOSS_WINDOW_PIECES {
        let _ = evidence.on_piece(now, 1_000);
    }
    assert_eq!(
        evidence.loss(),
        (0, LOSS_WINDOW_PIECES),
        "old losses roll out"
    );
    evidence.on_lost(LOSS_WINDOW_PIECES / 4, 0, 1_472);
    assert_eq!(
        evidence.loss(),
        (LOSS_WINDOW_PIECES / 4, LOSS_WINDOW_PIECES)
    );
    assert_eq!(
        evidence.lossy(),
        Some((LOSS_WINDOW_PIECES / 4, LOSS_WINDOW_PIECES))
    );
    // A huge count is bounded by the window, not looped over.
    evidence.on_lost(u32::MAX, u32::MAX, 1_472);
    assert_eq!(evidence.loss(), (LOSS_WINDOW_PIECES, LOSS_WINDOW_PIECES));
    // 1% is no reason to call a download slow.
    let mut light = PeerEvidence::default();
    for i in 0..200 {
        if i % 100 == 0 {
            light.on_lost(1, 0, 1_472);
        } else {
            let _ = light.on_piece(now, 1_000);
        }
    }
    assert_eq!(light.loss(), (2, 200));
    assert_eq!(light.lossy(), None);
}

#[test]
fn a_narrowed_path_is_told_only_once_a_small_piece_arrives() {
    let now = Instant::now();
    let mut evidence = PeerEvidence::default();
    evidence.on_narrowed(1_472, 1_232);
    assert_eq!(evidence.narrowed(1_232), None, "not confirmed yet");
    assert_eq!(
        evidence.on_piece(now, 1_472),
        None,
        "a late large piece confirms nothing"
    );
    // Large pieces asked before the narrowing time out after it: no evidence against it.
    evidence.on_lost(NARROWED_EVIDENCE_PIECES, NARROWED_EVIDENCE_PIECES, 1_472);
    for _ in 1..NARROWED_EVIDENCE_PIECES {
        assert_eq!(evidence.on_piece(now, 1_232), None, "too few to tell");
    }
    let confirmed = evidence.on_piece(now, 1_232).expect("confirmed");
    assert_eq!(
        (confirmed.lost_bytes, confirmed.datagram_bytes),
        (1_472, 1_232)
    );
    assert_eq!(evidence.on_piece(now, 1_232), None, "told once");
    assert!(evidence.narrowed(1_232).is_some());
    assert_eq!(
        evidence.narrowed(1_472),
        None,
        "a later search found the large size works again"
    );
    // Random loss narrowed it: small pieces asked once small ones arrive are lost as
    // often. Never told.
    let mut lossy = PeerEvidence::default();
    lossy.on_narrowed(1_472, 1_232);
    assert_eq!(lossy.judged_since(), None, "nothing small arrived yet");
    assert_eq!(lossy.on_piece(now, 1_232), None);
    assert_eq!(
        lossy.judged_since(),
        Some(now),
        "the first small piece starts it"
    );
    for _ in 0..4 * NARROWED_EVIDENCE_PIECES {
        lossy.on_lost(1, 1, 1_232);
        assert_eq!(lossy.on_piece(now, 1_232), None);
    }
    assert_eq!(lossy.narrowed(1_232), None);
    // Small pieces asked while the holder still sent the large ones time out behind
    // them: not judged. Those asked once small ones arrive do arrive. Told.
    let mut backlogged = PeerEvidence::default();
    backlogged.on_narrowed(1_472, 1_232);
    backlogged.on_lost(4 * NARROWED_EVIDENCE_PIECES, 0, 1_232);
    for _ in 1..NARROWED_EVIDENCE_PIECES {
        assert_eq!(backlogged.on_piece(now, 1_232), None);
    }
    assert!(backlogged.on_piece(now, 1_232).is_some());
}

#[test]
fn pings_go_after_a_silence_and_not_more_often_than_asked() {
    let start = Instant::now();
    let mut evidence = PeerEvidence::default();
    let (after, every) = (S, S / 4);
    assert!(!evidence.ping_due(start + S / 2, start, after, every));
    assert_eq!(evidence.ping_deadline(start, after, every), start + S);
    assert!(evidence.ping_due(start + S, start, after, every));
    assert!(!evidence.ping_due(start + S + S / 8, start, after, every));
    assert_eq!(
        evidence.ping_deadline(start, after, every),
        start + S + S / 4
    );
    assert!(evidence.ping_due(start + S + S / 4, start, after, every));
}

/// Three pieces lost, then one arriving at `at`.
fn lossy_round(evidence: &mut PeerEvidence, at: Instant) {
    evidence.on_lost(3, 0, 1_472);
    let _ = evidence.on_piece(at, 1_000);
}

#[test]
fn the_reason_names_what_was_seen() {
    let start = Instant::now();
    let now = start + 30 * S;
    let mut diagnosis = Diagnosis::new(start);
    // Nothing from the tracker for 30 s.
    let silent = tracker(Some(start));
    assert_eq!(
        diagnosis.why("f", &[], &silent, now),
        Some(Reason::TrackerSilent {
            addr: addr(12345),
            for_s: 30
        })
    );
    assert_eq!(
        diagnosis.explain("f", &[], &silent, now).unwrap(),
        "the tracker at 10.0.0.1:12345 has not answered for 30 s"
    );
    // A tracker that answers, and lists nobody.
    let answering = tracker(None);
    assert_eq!(
        diagnosis.why("f", &[], &answering, now),
        None,
        "not asked yet"
    );
    diagnosis.on_lookup(0);
    assert_eq!(
        diagnosis.explain("f", &[], &answering, now).unwrap(),
        "no node holds f"
    );
    // A holder heard 12 s ago, dropped since for saying nothing while we waited on it.
    diagnosis.on_lookup(1);
    let mut gone = PeerEvidence::default();
    gone.on_datagram(now - 12 * S);
    gone.on_silent();
    assert_eq!(
        diagnosis
            .explain("f", &[view(1, false, &gone)], &answering, now)
            .unwrap(),
        "the holders stopped answering (last heard 12 s ago)"
    );
    assert_eq!(
        diagnosis
            .explain("f", &[view(1, false, &gone)], &silent, now)
            .unwrap(),
        "the holders stopped answering (last heard 12 s ago); the tracker at \
         10.0.0.1:12345 has not answered for 30 s either"
    );
    // Heard 3 s ago, its last pieces lost, then silent through the pings: silent, not
    // lossy.
    let mut killed = PeerEvidence::default();
    for _ in 0..20 {
        let _ = killed.on_piece(now - 3 * S, 1_000);
    }
    killed.on_lost(40, 0, 1_472);
    killed.on_silent();
    assert_eq!(
        diagnosis
            .explain("f", &[view(1, false, &killed)], &answering, now)
            .unwrap(),
        "the holders stopped answering (last heard 3 s ago)"
    );
    // A holder that never answered: its address is shown.
    let never = PeerEvidence::default();
    assert_eq!(
        diagnosis
            .explain("f", &[view(2, false, &never)], &answering, now)
            .unwrap(),
        "no holder the tracker listed ever answered (node 2 at 10.0.0.1:4002): is that \
         address reachable from here?"
    );
    // A holder that answers and loses 3 pieces in 4: never called silent, even dropped.
    let mut lossy = PeerEvidence::default();
    for _ in 0..16 {
        lossy_round(&mut lossy, now - S);
    }
    lossy.on_datagram(now - S);
    let reason = diagnosis
        .explain(
            "f",
            &[view(1, false, &gone), view(3, false, &lossy)],
            &answering,
            now,
        )
        .unwrap();
    assert_eq!(
        reason,
        "pieces from node 3 are lost (75% of the last 64) while it still answers: a \
         lossy or policed path"
    );
    // Dropped for losing its pieces and asked nothing since (the tracker had not listed it
    // again): its loss is the cause however long ago it was heard, not a silence.
    let mut dropped_lossy = PeerEvidence::default();
    for _ in 0..16 {
        lossy_round(&mut dropped_lossy, now - 20 * S);
    }
    assert_eq!(
        diagnosis
            .explain("f", &[view(1, false, &dropped_lossy)], &answering, now)
            .unwrap(),
        "pieces from node 1 are lost (75% of the last 64) while it still answers: a \
         lossy or policed path"
    );
    // A holder that answers (refusals, have-maps) and sent no piece lately.
    let mut refusing = PeerEvidence::default();
    let _ = refusing.on_piece(now - 20 * S, 1_000);
    refusing.on_datagram(now - S);
    assert_eq!(
        diagnosis
            .explain("f", &[view(5, false, &refusing)], &answering, now)
            .unwrap(),
        "node 5 answers, but no piece came from it for 20 s"
    );
    // The same holder, active and losing little: nothing to tell.
    let mut fine = PeerEvidence::default();
    for _ in 0..100 {
        let _ = fine.on_piece(now, 1_000);
    }
    assert_eq!(
        diagnosis.why("f", &[view(1, true, &fine)], &answering, now),
        None
    );
    // A confirmed narrowing of an active holder.
    let mut narrowed = PeerEvidence::default();
    narrowed.on_narrowed(1_472, 1_232);
    for _ in 0..NARROWED_EVIDENCE_PIECES {
        let _ = narrowed.on_piece(now, 1_232);
    }
    assert_eq!(
        diagnosis
            .why("f", &[view(4, true, &narrowed)], &answering, now)
            .unwrap()
            .to_string(),
        format!(
            "large datagrams from node 4 stop arriving while small ones do: the path \
             drops 1472-byte datagrams (a fragmentation black hole?); using {}-byte pieces",
            1_232 - crate::wire::PIECE_OVERHEAD_BYTES
        )
    );
}

#[test]
fn pieces_are_awaited_only_while_some_are_in_flight() {
    let start = Instant::now();
    let mut evidence = PeerEvidence::default();
    evidence.note_in_flight(start, true);
    evidence.note_in_flight(start + S, true);
    assert_eq!(evidence.pieces_awaited_for(start + 2 * S), 2 * S);
    let _ = evidence.on_piece(start + 2 * S, 1_000);
    assert_eq!(
        evidence.pieces_awaited_for(start + 3 * S),
        S,
        "a piece restarts it"
    );
    evidence.note_in_flight(start + 3 * S, false);
    assert_eq!(evidence.pieces_awaited_for(start + 9 * S), Duration::ZERO);
    let _ = evidence.on_piece(start + 9 * S, 1_000);
    assert_eq!(
        evidence.pieces_awaited_for(start + 10 * S),
        Duration::ZERO,
        "a late piece starts no clock"
    );
    evidence.note_in_flight(start + 10 * S, true);
    assert_eq!(evidence.pieces_awaited_for(start + 10 * S), Duration::ZERO);
    // Idle between two timer calls, then asked again: the clock restarts at the request.
    evidence.on_request(start + 15 * S, true);
    assert_eq!(evidence.pieces_awaited_for(start + 16 * S), S);
    evidence.on_request(start + 16 * S, false);
    assert_eq!(evidence.pieces_awaited_for(start + 17 * S), 2 * S);
}

#[test]
fn slow_reports_come_at_most_once_an_interval() {
    let start = Instant::now();
    let mut diagnosis = Diagnosis::new(start);
    assert!(!diagnosis.take_slow_report(start));
    assert!(diagnosis.take_slow_report(start + SLOW_REPORT_INTERVAL));
    assert!(!diagnosis.take_slow_report(start + SLOW_REPORT_INTERVAL + S));
    assert_eq!(
        diagnosis.slow_report_due(),
        Some(start + 2 * SLOW_REPORT_INTERVAL)
    );
}
