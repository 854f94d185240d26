//! A real headless browser for the console tests: Debian's `chromium` driven through
//! `chromedriver` (package `chromium-driver`) over the W3C WebDriver protocol, spoken
//! with reqwest on loopback. chromedriver is our child on a free port, stopped by PID
//! when the test ends.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const MISSING: &str = "the console tests need chromium and chromium-driver: run the README's test command (apt-get install -y --no-install-recommends chromium chromium-driver)";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a headless chromium session.
    pub async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(MISSING);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless", "--no-sandbox", "--disable-gpu",
                             "--disable-background-networking", "--disable-component-update",
                             "--no-first-run", "--disable-dev-shm-usage"]
                }
            } } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            http,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(answer) => panic!("WebDriver {path}: {answer}"),
        }
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        } else {
            request = request.json(&json!({}));
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"]["error"].is_string() {
            return Err(answer);
        }
        Ok(answer["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Sizes the window so that the viewport (what a screenshot holds) is exactly
    /// `width` × `height` CSS pixels: the window's frame is measured and added.
    pub async fn window(&self, width: u32, height: u32) {
        let mut outer = (width, height);
        for _ in 0..3 {
            self.call(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({ "width": outer.0, "height": outer.1 })),
            )
            .await;
            let inner = self
                .call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({ "script": "return [window.innerWidth, window.innerHeight];", "args": [] })),
                )
                .await;
            let seen = (
                inner[0].as_u64().unwrap_or(0) as u32,
                inner[1].as_u64().unwrap_or(0) as u32,
            );
            if seen == (width, height) {
                return;
            }
            outer = (
                (outer.0 + width).saturating_sub(seen.0),
                (outer.1 + height).saturating_sub(seen.1),
            );
        }
    }

    async fn find(&self, css: &str) -> String {
        let element = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), None)
            .await;
    }

    /// Clicks something that loads a new page (a submit button, a link) and waits until
    /// the old page is gone, so that what is read next is the new one.
    pub async fn click_and_load(&self, css: &str) {
        let old = self.find("html").await;
        self.click(css).await;
        for _ in 0..100 {
            let answer = self
                .try_call(reqwest::Method::GET, &format!("/element/{old}/name"), None)
                .await;
            match answer {
                Err(answer) if answer["value"]["error"] == "stale element reference" => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        // The new page's document is complete.
        for _ in 0..100 {
            let state = self
                .call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({ "script": "return document.readyState", "args": [] })),
                )
                .await;
            if state.as_str() == Some("complete") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        // A form's submission may still be replacing the page: a body found before the
        // new page arrived goes stale, and is looked up again.
        let mut tries = 0;
        loop {
            let id = self.find("body").await;
            match self
                .try_call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                .await
            {
                Ok(text) => return text.as_str().unwrap_or_default().to_string(),
                Err(answer)
                    if answer["value"]["error"] == "stale element reference" && tries < 50 =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(answer) => panic!("WebDriver text: {answer}"),
            }
        }
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    pub async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
