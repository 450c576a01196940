//! A CQL (native protocol v4) server over kassandra's in-memory engine, for Sluice's tests.
//!
//! `sluice-cassandra-test-server [--port N] [--user U --password P]` listens on 127.0.0.1 (port
//! 0: a free one) and prints `listening on ADDRESS` once it accepts connections. With a user
//! and password it asks clients to authenticate as Cassandra's `PasswordAuthenticator` does
//! (SASL PLAIN) and refuses wrong credentials with Cassandra's message; kassandra itself has
//! no authentication. A request kassandra cannot serve (a type it leaves unimplemented) gets a
//! server error instead of ending the process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use kassandra::KassandraSession;
use kassandra::error::DbError;
use kassandra::frame::request::{Request, RequestOpcode};
use kassandra::frame::response::error::Error;
use kassandra::frame::response::{Response, ResponseOpcode};
use kassandra::frame::{FrameFlags, FrameParams, ProtocolVersion, raw_response_sink, request_stream};
use tokio::net::{TcpListener, TcpStream};

/// Who may connect.
#[derive(Clone)]
struct Credentials {
    user: String,
    password: String,
}

fn main() {
    let mut port = 0u16;
    let mut user = None;
    let mut password = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(v)) => port = v.parse().expect("--port takes a number"),
            ("--user", Some(v)) => user = Some(v),
            ("--password", Some(v)) => password = Some(v),
            (other, _) => {
                eprintln!("unknown argument {other}; use --port N [--user U --password P]");
                std::process::exit(2);
            }
        }
    }
    let credentials = match (user, password) {
        (Some(user), Some(password)) => Some(Credentials { user, password }),
        (None, None) => None,
        _ => {
            eprintln!("--user and --password go together");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(serve(port, credentials));
}

async fn serve(port: u16, credentials: Option<Credentials>) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("binding the port");
    let address = listener.local_addr().expect("the bound address");
    println!("listening on {address}");
    let engine = Arc::new(Mutex::new(KassandraSession::new()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(engine.clone(), credentials.clone(), stream));
    }
}

/// One client connection: frames in, one response per frame out, in order.
async fn connection(
    engine: Arc<Mutex<KassandraSession>>,
    credentials: Option<Credentials>,
    mut stream: TcpStream,
) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.split();
    let mut requests = request_stream(reader);
    let mut responses = raw_response_sink(writer);
    let mut authenticated = credentials.is_none();
    while let Some(Ok((frame, opcode, data))) = requests.next().await {
        let reply = |opcode: ResponseOpcode, body: Bytes| {
            (
                FrameParams {
                    version: ProtocolVersion::V4,
                    flags: FrameFlags::empty(),
                    stream: frame.stream,
                },
                opcode,
                body,
            )
        };
        let (opcode, body) = if frame.version.is_unsupported() {
            encode(Response::unsupported_version())
        } else {
            match (opcode, &credentials) {
                (RequestOpcode::Startup, Some(_)) => {
                    // Cassandra's PasswordAuthenticator, by the name drivers look for.
                    let mut body = BytesMut::new();
                    let name = b"org.apache.cassandra.auth.PasswordAuthenticator";
                    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
                    body.extend_from_slice(name);
                    (ResponseOpcode::Authenticate, body.freeze())
                }
                (RequestOpcode::AuthResponse, Some(expected)) => {
                    if sasl_plain(&data).is_some_and(|(u, p)| {
                        u == expected.user.as_bytes() && p == expected.password.as_bytes()
                    }) {
                        authenticated = true;
                        // AUTH_SUCCESS with a null token.
                        (
                            ResponseOpcode::AuthSuccess,
                            Bytes::copy_from_slice(&(-1i32).to_be_bytes()),
                        )
                    } else {
                        let user = sasl_plain(&data)
                            .map(|(u, _)| String::from_utf8_lossy(u).into_owned())
                            .unwrap_or_default();
                        encode(Response::Error(Error::new(
                            DbError::AuthenticationError,
                            format!(
                                "Provided username {user} and/or password are incorrect"
                            ),
                        )))
                    }
                }
                (RequestOpcode::Options, _) => encode(Response::options()),
                (_, _) if !authenticated => encode(Response::Error(Error::new(
                    DbError::Unauthorized,
                    "authenticate first",
                ))),
                _ => encode(match Request::deserialize(opcode, &data, frame.flags) {
                    Err(e) => Response::Error(e),
                    Ok(request) => handle(&engine, request),
                }),
            }
        };
        if responses.send(reply(opcode, body)).await.is_err() {
            break;
        }
    }
}

/// SASL PLAIN's `\0user\0password` from an AUTH_RESPONSE body (`[bytes]`).
fn sasl_plain(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let length = i32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    let token = data.get(4..4 + usize::try_from(length).ok()?)?;
    let mut parts = token.splitn(3, |&b| b == 0);
    let _authzid = parts.next()?;
    Some((parts.next()?, parts.next()?))
}

/// A response's opcode and body; a response kassandra cannot encode becomes a server error.
fn encode(response: Response) -> (ResponseOpcode, Bytes) {
    let opcode = ResponseOpcode::try_from(response.opcode()).unwrap_or(ResponseOpcode::Error);
    let mut body = BytesMut::new();
    let mut flags = FrameFlags::empty();
    let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        response.serialize(&mut body, &mut flags)
    }));
    match encoded {
        Ok(Ok(())) => (opcode, body.freeze()),
        _ => {
            let mut body = BytesMut::new();
            Error::new(DbError::ServerError, "the test server cannot encode this response")
                .serialize(&mut body);
            (ResponseOpcode::Error, body.freeze())
        }
    }
}

/// Runs one request on the engine; kassandra's unimplemented corners answer a server error.
fn handle(engine: &Mutex<KassandraSession>, request: Request<'_>) -> Response {
    let mut engine = engine.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match request {
        Request::StartUp(_) | Request::Register { .. } => Ok(None),
        Request::Options => Err(Response::options()),
        Request::Query(q) => engine.process(q).map(Some).map_err(Response::Error),
        Request::Prepare(p) => engine.prepare(p).map(Some).map_err(Response::Error),
        Request::Execute(e) => engine.execute(e).map(Some).map_err(Response::Error),
        Request::Batch(b) => engine.process_batch(b).map(Some).map_err(Response::Error),
        Request::AuthResponse => Err(Response::Error(Error::new(
            DbError::ProtocolError,
            "no authentication was asked for",
        ))),
    }));
    match outcome {
        Ok(Ok(Some(result))) => Response::Result(result),
        Ok(Ok(None)) => Response::Ready,
        Ok(Err(response)) => response,
        Err(_) => Response::Error(Error::new(
            DbError::ServerError,
            "the test server (kassandra) does not implement this request",
        )),
    }
}
