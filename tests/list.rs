//! `list`: what the tracker offers. With the real binaries, `torrent ctl list --all` follows
//! the pages to the end (every file once, with the size and info hash its holder has), a
//! node on a standard (BEP 15) tracker says why it cannot list; in the simulation, the
//! console's `list` prints a page, and a tracker that never answers fails it in bounded time.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use torrent::console::{Command, ListFrom};
use torrent::sim::{NetConfig, Sim};

/// name → (info hash, bytes) of the complete files `dir`'s node holds, from its status.
fn held(scratch: &Scratch, dir: &Path) -> BTreeMap<String, (String, u64)> {
    let (code, out, err) = ctl(scratch, dir, &["--json", "status"]);
    assert_eq!(code, 0, "{err:?}");
    let status = last_reply(&out);
    let files = status["status"]["files"].as_array().expect("files").clone();
    files
        .iter()
        .map(|f| {
            let name = f["name"].as_str().unwrap().to_string();
            let hash = f["info_hash"].as_str().unwrap().to_string();
            (name, (hash, f["file_bytes"].as_u64().unwrap()))
        })
        .collect()
}

#[test]
fn ctl_list_all_follows_the_pages_to_every_file() {
    let scratch = Scratch::new("list");
    let sizes = [("a.bin", 300_000), ("b.bin", 5), ("c.bin", 70_000)];
    for (i, (name, len)) in sizes.iter().enumerate() {
        let id = if *name == "c.bin" { 2 } else { 1 };
        scratch.put_file(id, name, &random_bytes(i as u64, *len));
    }
    let tracker = tracker(&scratch);
    let mut node1 = node(
        &scratch,
        1,
        tracker.addr,
        &["--send", "a.bin", "--send", "b.bin"],
    );
    node1.proc.expect_line("sharing a.bin ");
    node1.proc.expect_line("sharing b.bin ");
    let mut node2 = holder(&scratch, 2, tracker.addr, "c.bin", &[]);
    let mut expected = held(&scratch, &scratch.node_dir(1));
    expected.extend(held(&scratch, &scratch.node_dir(2)));
    assert_eq!(expected.len(), 3);

    // Pages of two: the second page follows the first's cursor, and the list ends.
    let dir = scratch.node_dir(2);
    let (code, out, err) = ctl(&scratch, &dir, &["--json", "list", "--all", "--page", "2"]);
    assert_eq!(code, 0, "{out:?} {err:?}\n{}", node2.proc.describe());
    let reply = last_reply(&out);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["list"]["state"], "done", "{reply}");
    assert!(
        reply["list"].get("next").is_none(),
        "the list ended: {reply}"
    );
    assert_eq!(reply["list"]["files_total"], 3);
    let entries = reply["list"]["entries"].as_array().unwrap();
    let listed: Vec<(String, (String, u64))> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["holders"], 1, "{e}");
            assert_eq!(e["complete_holders"], 1, "{e}");
            let name = e["name"].as_str().unwrap().to_string();
            let hash = e["info_hash"].as_str().unwrap().to_string();
            (name, (hash, e["file_bytes"].as_u64().unwrap()))
        })
        .collect();
    assert_eq!(
        listed,
        expected.into_iter().collect::<Vec<_>>(),
        "in name order, each once"
    );

    // One page of two, from the console's side of the socket: the cursor says where next.
    let (code, out, _) = ctl(&scratch, &dir, &["--json", "list", "--page", "2"]);
    assert_eq!(code, 0);
    let page = last_reply(&out);
    assert_eq!(page["list"]["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["list"]["next"]["name"], "b.bin", "{page}");
    // The node keeps the page: list-state reads it again, as text.
    let id = page["list"]["id"].as_u64().unwrap().to_string();
    let (code, out, _) = ctl(&scratch, &dir, &["list-state", &id]);
    assert_eq!(code, 0);
    assert!(
        out[0].starts_with("a.bin  293.0 KiB  1 holder (1 complete)"),
        "{out:?}"
    );
    assert_eq!(out[2], "2 of the tracker's 3 files", "{out:?}");
    assert!(out[3].starts_with("more follow \"b.bin\""), "{out:?}");
    // From a name on, as text.
    let (code, out, _) = ctl(&scratch, &dir, &["list", "--from", "b.bin"]);
    assert_eq!(code, 0);
    assert!(
        out[0].starts_with("b.bin  5 B  1 holder (1 complete)"),
        "{out:?}"
    );
    assert!(
        out[1].starts_with("c.bin  68.4 KiB  1 holder (1 complete)"),
        "{out:?}"
    );
    assert_eq!(out[2], "2 of the tracker's 3 files");
    // A bad request is refused, with the reason.
    let (code, _, err) = ctl(&scratch, &dir, &["list", "--page", "65"]);
    assert_eq!(code, 2, "{err:?}");
    let (code, _, err) = ctl(&scratch, &dir, &["list-state", "999"]);
    assert_eq!(code, 1);
    assert!(err[0].contains("no list request has id 999"), "{err:?}");
    node1.proc.interrupt();
    node2.proc.interrupt();
}

#[test]
fn a_node_on_a_standard_tracker_says_bep15_cannot_list() {
    let scratch = Scratch::new("list-bep15");
    let tracker = tracker(&scratch);
    let url = format!("udp://{}/announce", tracker.addr);
    let mut list = args(&["node", "--id", "1", "--tracker", &url, "--dir"]);
    list.push(scratch.node_dir(1).display().to_string());
    list.extend(args(&["--listen", "127.0.0.1:0", "--log-dir"]));
    list.push(scratch.logs().display().to_string());
    let mut node = spawn("node1", &scratch.root, &list);
    node.expect_line("node 1 listening on ");
    let (code, out, err) = ctl(&scratch, &scratch.node_dir(1), &["--json", "list"]);
    assert_eq!(code, 1, "{out:?} {err:?}");
    let reply = last_reply(&out);
    assert_eq!(reply["ok"], false);
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains("BEP 15 has no request that lists"),
        "{error}"
    );
    node.interrupt();
}

/// The simulation: three files on two nodes; node 1's console asks for pages of two.
#[test]
fn the_console_prints_a_page_and_a_silent_tracker_fails_it_in_bounded_time() {
    let mut sim = Sim::new(7, NetConfig::default());
    let (one, two) = (sim.add_node(|_| {}), sim.add_node(|_| {}));
    for (node, name) in [(one, "a.bin"), (one, "b.bin"), (two, "c.bin")] {
        sim.write_file(node, name, &random_bytes(3, 40_000));
        sim.command(node, Command::Send { name: name.into() });
    }
    let limit = Duration::from_secs(30);
    sim.run_until(|sim| sim.tracker().file_count() == 3, limit)
        .unwrap();
    let list = |from| Command::List {
        from,
        page_entries: 2,
    };
    sim.command(two, list(ListFrom::Start));
    let printed = |sim: &Sim| {
        let said = sim.said(two);
        said.iter()
            .find(|l| l.starts_with("the tracker offers"))
            .cloned()
    };
    sim.run_until(|sim| printed(sim).is_some(), limit).unwrap();
    let page = printed(&sim).unwrap();
    assert!(
        page.starts_with("the tracker offers 3 files; 2 here:"),
        "{page}"
    );
    assert!(
        page.contains("\n  a.bin  39.1 KiB  1 holder (1 complete)  "),
        "{page}"
    );
    assert!(page.contains("\n  b.bin  "), "{page}");
    assert!(!page.contains("c.bin  "), "{page}");
    assert!(
        page.ends_with("'list b.bin' goes on from there (torrent ctl list --all lists them all)"),
        "{page}"
    );

    // The tracker goes silent: the request fails after LIST_TIMEOUT, not never.
    sim.disconnect(two);
    let asked_at = sim.elapsed();
    sim.command(two, list(ListFrom::Name("b.bin".into())));
    let failed = |sim: &Sim| sim.said_starting(two, "list: tracker ");
    sim.run_until(failed, limit).unwrap();
    let waited = sim.elapsed() - asked_at;
    assert!(
        waited >= torrent::node::LIST_TIMEOUT
            && waited < torrent::node::LIST_TIMEOUT + Duration::from_secs(1),
        "failed after {waited:?}"
    );
    let line = sim
        .said(two)
        .iter()
        .find(|l| l.starts_with("list: tracker "))
        .unwrap();
    assert!(line.ends_with("did not answer within 10 s"), "{line}");
    sim.cleanup();
}
