//! A TCP proxy between the service and the test MongoDB server that counts the commands passing
//! through it, by name, so that a test can say how many reads MongoDB was asked for.
//!
//! Why not the server's own counters: `serverStatus` counts for the whole server, and the test
//! server is shared by every test running at the time (each in a database of its own), so its
//! figures mix them all. The proxy sees only the connections of the app it was given to.
//!
//! The driver (mongodb 3.x) speaks OP_MSG only; OP_COMPRESSED would appear if compressors were
//! configured (they are not) and is counted under its opcode so that a test would notice. The
//! hub's change stream is told apart from backlog reads: its `aggregate` (first stage
//! `$changeStream`) counts as `aggregate $changeStream`, and the `getMore`s on the cursor it
//! returned as `getMore $changeStream`, so `find + aggregate + getMore` are the reads viewers cost.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bson::{Bson, Document};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Counted (besides the command's name) for a read whose filter has an `$in` on `id` beside a
/// range on `_id`: one the test server does not plan on the `{type, id, _id}` index.
pub const IN_BESIDE_ID_RANGE: &str = "read with an id $in beside an _id range";

const OP_MSG: i32 = 2013;
const OP_QUERY: i32 = 2004;
/// Larger than any message MongoDB accepts (48 MB): a length beyond it means the stream is garbled.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What all connections of one proxy share.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, u64>,
    /// Cursor ids of change streams (cursor ids are unique server-wide, whichever connection
    /// a `getMore` comes on).
    change_stream_cursors: HashSet<i64>,
}

pub struct MongoProxy {
    pub port: u16,
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
    /// While `true`, replies on the change stream's connections wait (see `hold_change_stream`).
    held: watch::Sender<bool>,
}

impl MongoProxy {
    /// Starts a proxy in front of the server of a `mongodb://host:port/...` URI (its first host).
    pub async fn start(upstream_uri: &str) -> Self {
        let upstream = first_host(upstream_uri);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tally = Arc::new(Mutex::new(Tally::default()));
        let shared = tally.clone();
        let (held, holding) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                let (upstream, tally, holding) = (upstream.clone(), shared.clone(), holding.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&upstream).await else { return };
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    relay(inbound, outbound, tally, holding).await;
                });
            }
        });
        Self { port, tally, task, held }
    }

    /// The URI to give the app. `directConnection`: a driver that discovered the server's own
    /// address from `hello` would connect there and bypass the proxy.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Holds back (or, with `false`, lets go) what the server answers on the connections that
    /// carry a change stream: the service's stream then lags behind the writers, as a busy one
    /// does, by as much as the test writes meanwhile.
    pub fn hold_change_stream(&self, hold: bool) {
        self.held.send_replace(hold);
    }

    /// Commands of that name seen so far (`find`, `aggregate $changeStream`, ...).
    pub fn count(&self, name: &str) -> u64 {
        self.tally.lock().unwrap().counts.get(name).copied().unwrap_or(0)
    }

    /// Every count so far, by name.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.tally.lock().unwrap().counts.clone()
    }

    /// Reads other than the hub's change stream: `find + aggregate + getMore`.
    pub fn queries(&self) -> u64 {
        self.count("find") + self.count("aggregate") + self.count("getMore")
    }
}

impl Drop for MongoProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn first_host(uri: &str) -> String {
    let rest = uri.strip_prefix("mongodb://").expect("a mongodb:// URI (not mongodb+srv)");
    let hosts = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = hosts.rsplit('@').next().unwrap_or(hosts);
    host.split(',').next().unwrap_or(host).to_owned()
}

async fn relay(
    inbound: TcpStream,
    outbound: TcpStream,
    tally: Arc<Mutex<Tally>>,
    holding: watch::Receiver<bool>,
) {
    let (client_read, client_write) = inbound.into_split();
    let (server_read, server_write) = outbound.into_split();
    // Request ids of this connection's change-stream `aggregate`s, whose replies name the cursor.
    let opening = Arc::new(Mutex::new(HashSet::<i32>::new()));
    // Whether this connection has carried a change stream's commands (its replies can be held).
    let streaming = Arc::new(AtomicBool::new(false));
    let requests = {
        let (tally, opening, streaming) = (tally.clone(), opening.clone(), streaming.clone());
        pump(client_read, server_write, None, move |message| {
            if on_request(message, &tally, &opening) {
                streaming.store(true, Ordering::SeqCst);
            }
        })
    };
    let hold = Some((streaming, holding));
    let replies = pump(server_read, client_write, hold, move |message| on_reply(message, &tally, &opening));
    // Either side closing ends the connection, as a direct one would.
    tokio::select! {
        () = requests => {}
        () = replies => {}
    }
}

/// Forwards whole wire messages from `from` to `to`, showing each to `inspect` before it goes on
/// (so a cursor id is recorded before the client can use it).
/// With `hold`, a message waits while the proxy holds replies, if the connection streams.
async fn pump(
    from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut hold: Option<(Arc<AtomicBool>, watch::Receiver<bool>)>,
    mut inspect: impl FnMut(&[u8]),
) {
    let mut from = BufReader::new(from);
    let mut message = Vec::new();
    loop {
        let mut length = [0_u8; 4];
        if from.read_exact(&mut length).await.is_err() {
            break;
        }
        let n = usize::try_from(i32::from_le_bytes(length)).unwrap_or(0);
        if !(16..=MAX_MESSAGE).contains(&n) {
            break;
        }
        message.clear();
        message.extend_from_slice(&length);
        message.resize(n, 0);
        if from.read_exact(&mut message[4..]).await.is_err() {
            break;
        }
        inspect(&message);
        if let Some((streaming, holding)) = hold.as_mut() {
            if streaming.load(Ordering::SeqCst) && holding.wait_for(|held| !*held).await.is_err() {
                break;
            }
        }
        if to.write_all(&message).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Counts a request; true when it is a change stream's (its `aggregate` or a `getMore` on it).
fn on_request(message: &[u8], tally: &Mutex<Tally>, opening: &Mutex<HashSet<i32>>) -> bool {
    let name = match (opcode(message), body(message)) {
        (OP_MSG | OP_QUERY, Some(command)) => {
            let name = command.keys().next().cloned().unwrap_or_default();
            match name.as_str() {
                "aggregate" if opens_change_stream(&command) => {
                    opening.lock().unwrap().insert(request_id(message));
                    "aggregate $changeStream".to_owned()
                }
                "getMore" => {
                    let cursor = cursor_id(command.get("getMore"));
                    let ours =
                        cursor.is_some_and(|c| tally.lock().unwrap().change_stream_cursors.contains(&c));
                    if ours {
                        "getMore $changeStream".to_owned()
                    } else {
                        name
                    }
                }
                _ if opcode(message) == OP_QUERY => format!("OP_QUERY {name}"),
                _ => {
                    if in_beside_id_range(&command) {
                        *tally.lock().unwrap().counts.entry(IN_BESIDE_ID_RANGE.to_owned()).or_default() += 1;
                    }
                    name
                }
            }
        }
        (code, _) => format!("opcode {code}"),
    };
    let streams = name.ends_with("$changeStream");
    *tally.lock().unwrap().counts.entry(name).or_default() += 1;
    streams
}

/// Whether a `find`'s filter, or an `aggregate`'s first `$match`, has an `$in` on `id` and an
/// `_id` range.
fn in_beside_id_range(command: &Document) -> bool {
    let filter = match command.keys().next().map(String::as_str) {
        Some("find") => command.get_document("filter").ok(),
        Some("aggregate") => command
            .get_array("pipeline")
            .ok()
            .and_then(|stages| stages.first())
            .and_then(Bson::as_document)
            .and_then(|stage| stage.get_document("$match").ok()),
        _ => None,
    };
    filter.is_some_and(|filter| {
        let id_in = filter.get_document("id").is_ok_and(|id| id.contains_key("$in"));
        let id_range = filter.get_document("_id").is_ok_and(|range| range.keys().any(|k| k.starts_with('$')));
        id_in && id_range
    })
}

fn on_reply(message: &[u8], tally: &Mutex<Tally>, opening: &Mutex<HashSet<i32>>) {
    if !opening.lock().unwrap().remove(&response_to(message)) {
        return;
    }
    let cursor = body(message)
        .and_then(|reply| reply.get_document("cursor").ok().and_then(|c| cursor_id(c.get("id"))));
    if let Some(id) = cursor.filter(|id| *id != 0) {
        tally.lock().unwrap().change_stream_cursors.insert(id);
    }
}

fn opens_change_stream(command: &Document) -> bool {
    let first = command.get_array("pipeline").ok().and_then(|p| p.first());
    matches!(first, Some(Bson::Document(stage)) if stage.contains_key("$changeStream"))
}

fn cursor_id(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(id) => Some(*id),
        Bson::Int32(id) => Some(i64::from(*id)),
        _ => None,
    }
}

fn int_at(message: &[u8], at: usize) -> i32 {
    message.get(at..at + 4).map_or(0, |b| i32::from_le_bytes(b.try_into().unwrap()))
}

fn request_id(message: &[u8]) -> i32 {
    int_at(message, 4)
}

fn response_to(message: &[u8]) -> i32 {
    int_at(message, 8)
}

fn opcode(message: &[u8]) -> i32 {
    int_at(message, 12)
}

/// The command (or reply) document: OP_MSG's kind-0 section (kind-1 sections, the document
/// sequences of `insert` and the like, are skipped), or OP_QUERY's query.
fn body(message: &[u8]) -> Option<Document> {
    match opcode(message) {
        OP_MSG => {
            let checksum = int_at(message, 16) & 1 != 0;
            let end = message.len() - if checksum { 4 } else { 0 };
            let mut at = 20;
            while at < end {
                let kind = message[at];
                let size = usize::try_from(int_at(message, at + 1)).ok()?;
                if kind == 0 {
                    return Document::from_reader(message.get(at + 1..at + 1 + size)?).ok();
                }
                at += 1 + size;
            }
            None
        }
        OP_QUERY => {
            // flags, then the collection's name (a C string), numberToSkip, numberToReturn.
            let name_end = 20 + message.get(20..)?.iter().position(|b| *b == 0)?;
            let query = Document::from_reader(message.get(name_end + 9..)?).ok()?;
            match query.get_document("$query") {
                Ok(inner) => Some(inner.clone()),
                Err(_) => Some(query),
            }
        }
        _ => None,
    }
}
