//! SASL in front of the mock cluster, which speaks none: one listener per broker that
//! authenticates each connection (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, against one user)
//! and then forwards its bytes to the broker untouched.
//!
//! Before authentication a connection may only ask for ApiVersions (forwarded, with
//! SaslHandshake and SaslAuthenticate added to the broker's answer, since a client does not
//! try SASL with a broker that does not list them), SaslHandshake and SaslAuthenticate
//! (answered here; KIP-152 framing, versions 0–1). A failed authentication is answered with
//! SASL_AUTHENTICATION_FAILED and the connection closed, as a Kafka broker does; each one is
//! reported on stderr (`sasl: authentication failed ...`) so tests can count attempts.
//!
//! Written here because nothing that runs on this machine speaks Kafka's SASL (Apache Kafka
//! cannot be installed; tansu would add ~800 crates): it is the peer that checks the client's
//! credentials in the tests, not a stand-in for the client side, which is librdkafka's own.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};

/// The one user the front accepts.
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Its password.
    pub password: String,
}

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// Frames larger than this are refused before authentication (a client sends a few hundred
/// bytes until then).
const MAX_UNAUTHENTICATED_FRAME: usize = 1 << 20;

/// Accepts connections on `listener` for as long as the process lives, each on its own
/// thread, forwarding authenticated ones to `broker`.
pub fn serve(listener: TcpListener, broker: String, credentials: Arc<Credentials>) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (broker, credentials) = (broker.clone(), credentials.clone());
            std::thread::spawn(move || {
                // A connection that breaks off or skips SASL just ends (the mock cluster's own
                // client, which has no credentials, tries too); failed authentications are
                // reported where they happen.
                let _ = handle(conn, &broker, &credentials);
            });
        }
    });
}

fn handle(mut client: TcpStream, broker: &str, credentials: &Credentials) -> io::Result<()> {
    let mut upstream = TcpStream::connect(broker)?;
    let mut mechanism: Option<String> = None;
    let mut scram: Option<Scram> = None;
    loop {
        let Some(frame) = read_frame(&mut client)? else {
            return Ok(());
        };
        let request = Request::parse(&frame)?;
        match request.api_key {
            API_VERSIONS => {
                write_frame(&mut upstream, &frame)?;
                let answer = read_frame(&mut upstream)?
                    .ok_or_else(|| io::Error::other("the broker closed the connection"))?;
                write_frame(&mut client, &with_sasl_apis(&answer, request.api_version)?)?;
            }
            SASL_HANDSHAKE => {
                let wanted = read_string(request.body, &mut 0)?;
                let known = MECHANISMS.contains(&wanted.as_str());
                let mut out = request.correlation.to_be_bytes().to_vec();
                let code = if known { 0 } else { UNSUPPORTED_SASL_MECHANISM };
                out.extend(code.to_be_bytes());
                out.extend((MECHANISMS.len() as i32).to_be_bytes());
                for m in MECHANISMS {
                    put_string(&mut out, m);
                }
                write_frame(&mut client, &out)?;
                if !known {
                    return Ok(());
                }
                mechanism = Some(wanted);
            }
            SASL_AUTHENTICATE => {
                let mut at = 0;
                let bytes = read_bytes(request.body, &mut at)?;
                let step = match mechanism.as_deref() {
                    Some("PLAIN") => plain(bytes, credentials),
                    Some(m @ ("SCRAM-SHA-256" | "SCRAM-SHA-512")) => match scram.take() {
                        None => Scram::first(m, bytes, credentials).map(|(s, reply)| {
                            scram = Some(s);
                            Step::Continue(reply)
                        }),
                        Some(s) => s.last(bytes),
                    },
                    _ => Err("SaslAuthenticate before SaslHandshake".to_owned()),
                };
                match step {
                    Ok(Step::Continue(reply)) => {
                        authenticate_answer(&mut client, &request, 0, None, &reply)?;
                    }
                    Ok(Step::Done(reply)) => {
                        authenticate_answer(&mut client, &request, 0, None, &reply)?;
                        break;
                    }
                    Err(why) => {
                        eprintln!(
                            "sasl: authentication failed ({}): {why}",
                            mechanism.as_deref().unwrap_or("?")
                        );
                        let message = format!("Authentication failed: {why}");
                        authenticate_answer(
                            &mut client,
                            &request,
                            SASL_AUTHENTICATION_FAILED,
                            Some(&message),
                            &[],
                        )?;
                        return Ok(());
                    }
                }
            }
            other => {
                return Err(io::Error::other(format!(
                    "request with API key {other} before authentication"
                )));
            }
        }
    }
    // Authenticated: the rest of the connection is the broker's.
    let (mut to_client, mut from_broker) = (client.try_clone()?, upstream.try_clone()?);
    let back = std::thread::spawn(move || {
        let _ = io::copy(&mut from_broker, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let _ = io::copy(&mut client, &mut upstream);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = back.join();
    Ok(())
}

/// What an authentication step answers: more to exchange, or done.
enum Step {
    Continue(Vec<u8>),
    Done(Vec<u8>),
}

fn plain(bytes: &[u8], credentials: &Credentials) -> Result<Step, String> {
    // [authzid] NUL user NUL password
    let mut parts = bytes.split(|b| *b == 0);
    let (_, user, password) = (parts.next(), parts.next(), parts.next());
    if user == Some(credentials.user.as_bytes())
        && password == Some(credentials.password.as_bytes())
    {
        Ok(Step::Done(Vec::new()))
    } else {
        Err("invalid user name or password".to_owned())
    }
}

/// A SCRAM exchange (RFC 5802) between its first and last message.
struct Scram {
    sha512: bool,
    salted: Vec<u8>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

const ITERATIONS: u32 = 4096;

impl Scram {
    fn first(
        mechanism: &str,
        bytes: &[u8],
        credentials: &Credentials,
    ) -> Result<(Scram, Vec<u8>), String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "client-first is not UTF-8")?;
        // gs2 header ("n,," or "y,,", maybe with an authzid) then the bare message.
        let bare = text
            .splitn(3, ',')
            .nth(2)
            .ok_or("client-first has no gs2 header")?;
        let attr = |name: &str| {
            bare.split(',')
                .find_map(|a| a.strip_prefix(name))
                .map(str::to_owned)
        };
        let user = attr("n=").ok_or("client-first names no user")?;
        let client_nonce = attr("r=").ok_or("client-first has no nonce")?;
        if user != credentials.user {
            return Err(format!("unknown user '{user}'"));
        }
        let sha512 = mechanism == "SCRAM-SHA-512";
        let salt = uuid::Uuid::new_v4();
        let mut salted = vec![0u8; if sha512 { 64 } else { 32 }];
        let algorithm = if sha512 {
            pbkdf2::PBKDF2_HMAC_SHA512
        } else {
            pbkdf2::PBKDF2_HMAC_SHA256
        };
        let iterations = NonZeroU32::new(ITERATIONS).ok_or("zero iterations")?;
        pbkdf2::derive(
            algorithm,
            iterations,
            salt.as_bytes(),
            credentials.password.as_bytes(),
            &mut salted,
        );
        let nonce = format!("{client_nonce}{}", uuid::Uuid::new_v4().simple());
        let server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(salt.as_bytes()));
        let reply = server_first.clone().into_bytes();
        Ok((
            Scram {
                sha512,
                salted,
                client_first_bare: bare.to_owned(),
                server_first,
                nonce,
            },
            reply,
        ))
    }

    fn last(self, bytes: &[u8]) -> Result<Step, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "client-final is not UTF-8")?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or("client-final has no proof")?;
        let nonce = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or("client-final has no nonce")?;
        // Kafka's own ScramSaslServer accepts a client-final nonce that *ends with* the
        // server's, and librdkafka sends its client nonce once more in front of it.
        if !nonce.ends_with(&self.nonce) {
            return Err("client-final's nonce does not end with the server's".to_owned());
        }
        let proof = B64.decode(proof).map_err(|_| "the proof is not base64")?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let (mac, hash) = if self.sha512 {
            (hmac::HMAC_SHA512, &digest::SHA512)
        } else {
            (hmac::HMAC_SHA256, &digest::SHA256)
        };
        let sign = |key: &[u8], data: &[u8]| {
            hmac::sign(&hmac::Key::new(mac, key), data)
                .as_ref()
                .to_vec()
        };
        let client_key = sign(&self.salted, b"Client Key");
        let stored_key = digest::digest(hash, &client_key);
        let signature = sign(stored_key.as_ref(), auth_message.as_bytes());
        let expected: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        if proof != expected {
            return Err("invalid user name or password".to_owned());
        }
        let server_key = sign(&self.salted, b"Server Key");
        let server_signature = sign(&server_key, auth_message.as_bytes());
        Ok(Step::Done(
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

/// A request's header fields the front needs, and its body.
struct Request<'a> {
    api_key: i16,
    api_version: i16,
    correlation: i32,
    body: &'a [u8],
}

impl<'a> Request<'a> {
    /// Request header v1 (api key, version, correlation id, client id): the header of
    /// ApiVersions v0–2, SaslHandshake and SaslAuthenticate v0–1. (ApiVersions v3's header
    /// adds tagged fields after it; the front forwards that request whole.)
    fn parse(frame: &'a [u8]) -> io::Result<Request<'a>> {
        let bad = || io::Error::other("a request shorter than its header");
        let api_key = be_i16(frame, 0).ok_or_else(bad)?;
        let api_version = be_i16(frame, 2).ok_or_else(bad)?;
        let correlation = be_i32(frame, 4).ok_or_else(bad)?;
        let mut at = 8;
        let client_id_len = be_i16(frame, 8).ok_or_else(bad)?;
        at += 2 + client_id_len.max(0) as usize;
        Ok(Request {
            api_key,
            api_version,
            correlation,
            body: frame.get(at..).unwrap_or_default(),
        })
    }
}

fn authenticate_answer(
    client: &mut TcpStream,
    request: &Request<'_>,
    code: i16,
    message: Option<&str>,
    auth_bytes: &[u8],
) -> io::Result<()> {
    let mut out = request.correlation.to_be_bytes().to_vec();
    out.extend(code.to_be_bytes());
    match message {
        Some(m) => put_string(&mut out, m),
        None => out.extend((-1i16).to_be_bytes()),
    }
    out.extend((auth_bytes.len() as i32).to_be_bytes());
    out.extend(auth_bytes);
    if request.api_version >= 1 {
        // session_lifetime_ms: no re-authentication asked for.
        out.extend(0i64.to_be_bytes());
    }
    write_frame(client, &out)
}

/// The broker's ApiVersions answer with SaslHandshake v0–1 and SaslAuthenticate v0–1 added.
fn with_sasl_apis(answer: &[u8], version: i16) -> io::Result<Vec<u8>> {
    let bad = || io::Error::other("an ApiVersions answer the front cannot read");
    // Response header v0 (correlation id) for every version, then the error code.
    let code = be_i16(answer, 4).ok_or_else(bad)?;
    if code != 0 {
        return Ok(answer.to_vec());
    }
    let added: [(i16, i16, i16); 2] = [(SASL_HANDSHAKE, 0, 1), (SASL_AUTHENTICATE, 0, 1)];
    let mut out = answer[..6].to_vec();
    let mut at = 6;
    if version >= 3 {
        // Flexible: a compact array (length + 1 as an unsigned varint), each entry with its
        // own tagged fields (none from the mock broker).
        let count = read_varint(answer, &mut at)
            .ok_or_else(bad)?
            .checked_sub(1)
            .ok_or_else(bad)? as usize;
        let entries = answer.get(at..at + count * 7).ok_or_else(bad)?;
        put_varint(&mut out, (count + added.len() + 1) as u64);
        out.extend(entries);
        for (key, min, max) in added {
            out.extend(key.to_be_bytes());
            out.extend(min.to_be_bytes());
            out.extend(max.to_be_bytes());
            out.push(0);
        }
        out.extend(&answer[at + count * 7..]);
    } else {
        let count = be_i32(answer, 6).ok_or_else(bad)? as usize;
        at = 10;
        let entries = answer.get(at..at + count * 6).ok_or_else(bad)?;
        out.extend(((count + added.len()) as i32).to_be_bytes());
        out.extend(entries);
        for (key, min, max) in added {
            out.extend(key.to_be_bytes());
            out.extend(min.to_be_bytes());
            out.extend(max.to_be_bytes());
        }
        out.extend(&answer[at + count * 6..]);
    }
    Ok(out)
}

fn read_frame(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > MAX_UNAUTHENTICATED_FRAME {
        return Err(io::Error::other(format!("a frame of {len} bytes")));
    }
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame)?;
    Ok(Some(frame))
}

fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> io::Result<()> {
    stream.write_all(&(frame.len() as i32).to_be_bytes())?;
    stream.write_all(frame)?;
    stream.flush()
}

fn read_string(body: &[u8], at: &mut usize) -> io::Result<String> {
    let bad = || io::Error::other("a string past the end of the request");
    let len = be_i16(body, *at).ok_or_else(bad)?;
    *at += 2;
    let bytes = body.get(*at..*at + len.max(0) as usize).ok_or_else(bad)?;
    *at += len.max(0) as usize;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn read_bytes<'a>(body: &'a [u8], at: &mut usize) -> io::Result<&'a [u8]> {
    let bad = || io::Error::other("bytes past the end of the request");
    let len = be_i32(body, *at).ok_or_else(bad)?;
    *at += 4;
    let bytes = body.get(*at..*at + len.max(0) as usize).ok_or_else(bad)?;
    *at += len.max(0) as usize;
    Ok(bytes)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as i16).to_be_bytes());
    out.extend(s.as_bytes());
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn be_i16(bytes: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}
