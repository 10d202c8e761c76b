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
    assert!(refusal(r#"{"version":1,"command":"send","name":"../x"}"#).contains("separator"));
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
    });
    assert_eq!(
        parse_request(&request),
        Ok(Order::Command(Command::Download {
            name: "f.bin".into(),
            pin: None
        }))
    );
}
