use super::*;

#[test]
fn header_round_trip() {
    let exit = Exit {
        auth: NodeAuth {
            node_id: U32::new(7),
            token: U64::new(9),
        },
    };
    let mut buf = [0u8; 64];
    let len = Message::Exit(&exit).encode(&mut buf).unwrap();
    assert_eq!(decode(&buf[..len]), Ok(Message::Exit(&exit)));
}
