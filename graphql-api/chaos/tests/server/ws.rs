//! `graphql-transport-ws` over a real WebSocket, as a client speaks it.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A client socket.
pub type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// A socket to `/graphql` with the subprotocol, before `connection_init`.
pub fn open(addr: SocketAddr) -> Socket {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, response) = tungstenite::connect(request).expect("connect");
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some("graphql-transport-ws")
    );
    if let MaybeTlsStream::Plain(stream) = socket.get_mut() {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
    }
    socket
}

pub fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .expect("send");
}

/// The next protocol message (pings answered), or the close frame's code and reason.
pub fn next(socket: &mut Socket) -> Result<Value, (u16, String)> {
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => {
                let message: Value = serde_json::from_str(&text).expect("JSON message");
                if message["type"] == "ping" {
                    send(socket, json!({"type": "pong"}));
                    continue;
                }
                return Ok(message);
            }
            Ok(Message::Close(frame)) => {
                return Err(frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                }));
            }
            Ok(_) => {}
            Err(e) => return Err((0, e.to_string())),
        }
    }
}

/// A socket past `connection_init` with `credential`.
pub fn connect(addr: SocketAddr, credential: &str) -> Socket {
    let mut socket = open(addr);
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {credential}")}}),
    );
    assert_eq!(next(&mut socket).expect("ack")["type"], "connection_ack");
    socket
}

/// Every `next` payload of subscription `id` until it completes.
pub fn collect(socket: &mut Socket, id: &str) -> Vec<Value> {
    let mut items = Vec::new();
    loop {
        let message = next(socket).expect("a message");
        assert_eq!(message["id"], id, "{message}");
        match message["type"].as_str() {
            Some("next") => {
                assert!(message["payload"]["errors"].is_null(), "{message}");
                items.push(message["payload"]["data"].clone());
            }
            Some("complete") => return items,
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
}
