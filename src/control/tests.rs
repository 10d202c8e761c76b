use super::*;

fn refusal(line: &str) -> String {
    match parse_request(line) {
        Err(refusal) => {
            assert!(!refusal.is_empty());
            refusal
        }
        Ok(order) => panic!("{line} was taken as {order:?}"),
    }
}

#[test]
fn requests_parse_into_the_consoles_commands() {
    let order = |line: &str| parse_request(line).unwrap_or_else(|r| panic!("{line}: {r:?}"));
    assert_eq!(
        order(r#"{"version":1,"command":"status"}"#),
        Order::Status { text: false }
    );
    assert_eq!(
        order(r#"{"version":1,"command":"status","text":true}"#),
        Order::Status { text: true }
    );
    assert_eq!(
        order(r#"{"command":"send","name":"a b.bin","version":1}"#),
        Order::Command(Command::Send {
            name: "a b.bin".into()
        })
    );
    assert_eq!(
        order(r#"{"version":1,"command":"download","target":"f.bin"}"#),
        Order::Command(Command::Download {
            name: "f.bin".into(),
            pin: None
        })
    );
    let hex = "be84c1abda6757746730880af5e66607af0cf75e";
    assert_eq!(
        order(&format!(
            r#"{{"version":1,"command":"download","target":"{hex}"}}"#
        )),
        Order::Command(Command::DownloadByHash {
            info_hash: crate::wire::parse_hex(hex).unwrap(),
            name: None
        })
    );
    assert_eq!(
        order(r#"{"version":1,"command":"download-state","id":7}"#),
        Order::DownloadState { id: 7 }
    );
    assert_eq!(
        order(r#"{"version":1,"command":"exit"}"#),
        Order::Command(Command::Exit)
    );
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    assert!(refusal("garbage").starts_with("not a JSON object"));
    assert!(refusal("[1,2]").contains("version"));
    assert!(refusal(r#"{"command":"status"}"#).contains("\"version\": 1"));
    assert!(refusal(r#"{"version":2,"command":"status"}"#).contains("version 2"));
    assert!(refusal(r#"{"version":0,"command":"status"}"#).contains("version 0"));
    assert!(refusal(r#"{"version":1,"command":"fly"}"#).contains("fly"));
    assert!(refusal(r#"{"version":1,"command":"send"}"#).contains("name"));
    assert!(refusal(r#"{"version":1,"command":"send","name":"a\\b"}"#).contains("separator"));
    assert!(refusal(r#"{"version":1,"command":"export","name":".hidden"}"#).contains("bad name"));
    assert!(refusal(r#"{"version":1,"command":"download","target":"x@zz"}"#).contains("zz"));
    assert!(refusal(r#"{"version":1,"command":"download-state","id":-1}"#).contains("id"));
}

#[test]
fn replies_carry_the_version_and_read_back() {
    let reply = Reply {
        ok: true,
        message: Some("hashing f".into()),
        ..Reply::default()
    };
    let line = reply_line(reply.clone());
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["version"], PROTOCOL_VERSION);
    assert_eq!(value["ok"], true);
    assert!(value.get("error").is_none(), "empty fields are left out");
    let back: Reply = serde_json::from_str(&line).unwrap();
    assert_eq!(back, reply);
    let request = request_line(&Request::Download {
        target: "f.bin".into(),
        output: None,
    });
    assert_eq!(
        parse_request(&request),
        Ok(Order::Command(Command::Download {
            name: "f.bin".into(),
            pin: None
        }))
    );
    // Older clients leave `output` out; newer ones may name a directory.
    assert_eq!(
        parse_request(r#"{"version":1,"command":"download","target":"f.bin","output":"/in"}"#),
        Ok(Order::Command(Command::DownloadTo {
            download: Box::new(Command::Download {
                name: "f.bin".into(),
                pin: None
            }),
            output: "/in".into()
        }))
    );
}

#[test]
fn list_requests_parse_from_the_start_a_name_or_a_cursor() {
    let order = |line: &str| parse_request(line).unwrap_or_else(|r| panic!("{line}: {r:?}"));
    let list = |from, page_entries| Order::Command(Command::List { from, page_entries });
    assert_eq!(
        order(r#"{"version":1,"command":"list"}"#),
        list(console::ListFrom::Start, 0)
    );
    assert_eq!(
        order(r#"{"version":1,"command":"list","from":"b.bin","page_entries":64}"#),
        list(console::ListFrom::Name("b.bin".into()), 64)
    );
    let hex = "be84c1abda6757746730880af5e66607af0cf75e";
    let after = format!(
        r#"{{"version":1,"command":"list","after":{{"name":"b.bin","info_hash":"{hex}"}}}}"#
    );
    assert_eq!(
        order(&after),
        list(
            console::ListFrom::After {
                name: "b.bin".into(),
                info_hash: crate::wire::parse_hex(hex).unwrap()
            },
            0
        )
    );
    assert_eq!(
        order(r#"{"version":1,"command":"list-state","id":3}"#),
        Order::ListState { id: 3 }
    );
    // The cursor a reply gives is what the next request takes.
    let request = request_line(&Request::List {
        from: None,
        after: Some(ListCursor {
            name: "b.bin".into(),
            info_hash: hex.into(),
        }),
        page_entries: Some(2),
    });
    assert!(matches!(
        parse_request(&request),
        Ok(Order::Command(Command::List {
            from: console::ListFrom::After { .. },
            page_entries: 2
        }))
    ));
    assert!(
        refusal(
            r#"{"version":1,"command":"list","from":"a","after":{"name":"a","info_hash":"00"}}"#
        )
        .contains("not both")
    );
    assert!(
        refusal(r#"{"version":1,"command":"list","after":{"name":"a","info_hash":"00"}}"#)
            .contains("info hash")
    );
    assert!(refusal(r#"{"version":1,"command":"list","from":"../a"}"#).contains("bad name"));
    assert!(refusal(r#"{"version":1,"command":"list","page_entries":0}"#).contains("from 1 to 64"));
    assert!(
        refusal(r#"{"version":1,"command":"list","page_entries":65}"#).contains("from 1 to 64")
    );
    assert!(refusal(r#"{"version":1,"command":"list","page_entries":300}"#).contains("300"));
}
