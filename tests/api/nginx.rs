//! Through a stock nginx `proxy_pass` (no buffering settings), events arrive as they happen.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{spawn_app, take_data, SseClient, PATIENCE};

pub struct Nginx {
    child: Child,
    dir: std::path::PathBuf,
    pub port: u16,
}

impl Nginx {
    /// nginx with only a `proxy_pass` to the `upstreams`, tried in turn (Debian's nginx, installed
    /// by scripts/test.sh). One process (`master_process off`), so killing it leaves no worker.
    pub fn start(upstreams: &[std::net::SocketAddr]) -> Self {
        let dir = std::env::temp_dir().join(format!("sse-logs-nginx-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.display();
        let servers: String = upstreams.iter().map(|addr| format!("server {addr} max_fails=0; ")).collect();
        let config = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{}}\n\
             http {{\n\
               access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               upstream replicas {{ {servers} }}\n\
               server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://replicas; }} }}\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (scripts/test.sh installs Debian's nginx)");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, dir, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_stock_nginx_proxy_passes_each_event_through_as_it_happens() {
    let app = spawn_app().await;
    let nginx = Nginx::start(&[app.addr]);
    app.write("deploy", 3_i64, &["before"]).await;
    let url = format!("http://127.0.0.1:{}/api/v1/sse/logs/?type=deploy&id=3&num=0", nginx.port);
    let response = app.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut client = SseClient::new(response);
    assert_eq!(take_data(&mut client, 1).await, ["before"]);
    // Each live line must come through on its own, while the response is still open: a
    // buffering proxy would hold them until the end of the log.
    for n in 1..=3 {
        let line = format!("live {n}");
        app.write("deploy", 3_i64, &[&line]).await;
        assert_eq!(take_data(&mut client, 1).await, [line]);
    }
    app.write("deploy", 3_i64, &["[DONE]"]).await;
    assert_eq!(take_data(&mut client, 1).await, ["[DONE]"]);
}
