//! One delivery attempt, and when the next one is due.
//!
//! An attempt is one POST of the stored bytes: a 2xx answer within the timeout delivers it;
//! anything else (another status, a redirect, which is never followed, no answer in time, no
//! connection) is retried on the contract's schedule until `notify.retry_secs` runs out.

use std::time::Duration;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Sse-Logs-Signature";

/// How long a receiver has to answer an attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx status: delivered.
    Delivered(u16),
    /// Any other status, redirects included.
    Refused(u16),
    /// No answer within the timeout, or no connection at all.
    Silent,
}

/// The client every attempt uses: no redirects followed, a bounded wait for the whole answer.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// POSTs `body` to `url`, signed with `signature` (the header value) when there is one.
pub async fn attempt(client: &reqwest::Client, url: &str, body: Vec<u8>, signature: Option<&str>) -> Answer {
    let mut request = client.post(url).header("content-type", "application/json").body(body);
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Answer::Delivered(response.status().as_u16()),
        Ok(response) => Answer::Refused(response.status().as_u16()),
        Err(err) => {
            // The receiver's address may carry a token (chat webhooks do): log the kind only.
            tracing::debug!(timeout = err.is_timeout(), connect = err.is_connect(), "webhook gave no answer");
            Answer::Silent
        }
    }
}

/// The wait before retry number `retry` (1 for the first): 4 s, then doubling, at most 5 min.
pub fn retry_delay(retry: u32) -> Duration {
    let doubled = 4u64.saturating_mul(1u64 << retry.saturating_sub(1).min(20));
    Duration::from_secs(doubled.min(300))
}

/// When retry number `retry` is due, counted from the first attempt, or `None` once that is
/// past `retry_secs` (the delivery is then given up).
pub fn next_retry(retry: u32, retry_secs: u64) -> Option<Duration> {
    let due: Duration = (1..=retry).map(retry_delay).sum();
    (due <= Duration::from_secs(retry_secs)).then_some(due)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A receiver answering each connection with the next status line (or never, for `None`)
    /// and handing back the request heads and bodies it read.
    async fn receiver(answers: Vec<Option<&'static str>>) -> (String, tokio::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (seen, requests) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request_complete(&request) {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                seen.send(String::from_utf8_lossy(&request).into_owned()).await.unwrap();
                match answer {
                    Some(status) => {
                        let head = format!("HTTP/1.1 {status}\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                        socket.write_all(head.as_bytes()).await.unwrap();
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            }
        });
        (url, requests)
    }

    fn request_complete(request: &[u8]) -> bool {
        let text = String::from_utf8_lossy(request);
        let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        body.len() >= length
    }

    #[tokio::test]
    async fn a_2xx_delivers_the_exact_signed_bytes_and_anything_else_does_not() {
        let (url, mut requests) =
            receiver(vec![Some("204 No Content"), Some("500 Oops"), Some("302 Found")]).await;
        let client = client(ATTEMPT_TIMEOUT);
        let body = br#"{"event":"failed"}"#.to_vec();
        let sig = super::super::signature(b"k", &body);
        assert_eq!(attempt(&client, &url, body.clone(), Some(&sig)).await, Answer::Delivered(204));
        let first = requests.recv().await.unwrap();
        assert!(first.starts_with("POST /hook "), "{first}");
        assert!(first.to_ascii_lowercase().contains(&format!("x-sse-logs-signature: {sig}")), "{first}");
        assert!(first.ends_with(r#"{"event":"failed"}"#), "{first}");
        assert_eq!(attempt(&client, &url, body.clone(), None).await, Answer::Refused(500));
        // The redirect is an answer, not a new address to try.
        assert_eq!(attempt(&client, &url, body, None).await, Answer::Refused(302));
        assert_eq!(requests.recv().await.map(|r| r.contains("x-sse-logs-signature")), Some(false));
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_is_no_answer_within_the_timeout() {
        let (url, _requests) = receiver(vec![None]).await;
        let started = std::time::Instant::now();
        let answer = attempt(&client(Duration::from_millis(300)), &url, b"{}".to_vec(), None).await;
        assert_eq!(answer, Answer::Silent);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn retries_start_within_5_s_double_and_stay_at_most_5_min_apart_until_retry_secs() {
        assert!(retry_delay(1) <= Duration::from_secs(5));
        assert_eq!(retry_delay(2), retry_delay(1) * 2);
        assert_eq!(retry_delay(30), Duration::from_secs(300));
        assert_eq!(next_retry(1, 3600), Some(retry_delay(1)));
        let last = (1..100).take_while(|&n| next_retry(n, 3600).is_some()).last().unwrap();
        assert!(next_retry(last, 3600).unwrap() > Duration::from_secs(3300));
        assert_eq!(next_retry(last + 1, 3600), None);
    }
}
