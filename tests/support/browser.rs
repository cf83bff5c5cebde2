//! Headless Chromium driven over W3C WebDriver by chromedriver (Debian's `chromium` and `chromium-driver`).
//!
//! Written over reqwest rather than taken from fantoccini: the dozen endpoints used here are plain JSON, and
//! fantoccini would add some 25 crates to every cold build (a second `http`, the `webdriver` crate, ICU data).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
}

/// What to install when the browser cannot start: the test fails with it, never skips.
const INSTALL: &str = "install Debian's chromium and chromium-driver (`apt-get update && apt-get install -y chromium \
                       chromium-driver`; ./scripts/test does it), or set CHROME_BIN and CHROMEDRIVER";

fn on_path(var: &str, names: &[&str]) -> PathBuf {
    if let Some(set) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return PathBuf::from(set);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{} not found on PATH: {INSTALL}", names.join(" or ")))
}

impl Browser {
    /// A new headless Chromium with a `width` × `height` viewport (a phone's metrics below 600 px).
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromedriver = on_path("CHROMEDRIVER", &["chromedriver"]);
        let chromium = on_path("CHROME_BIN", &["chromium", "chromium-browser", "google-chrome"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL}", chromedriver.display()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser { http, base, driver };
        let started = Instant::now();
        while browser.http.get(format!("{}/status", browser.base)).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not answer within 20 s; {INSTALL}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", format!("--window-size={width},{height}")],
            },
        }}});
        let r = browser.http.post(format!("{}/session", browser.base)).json(&capabilities).send().await;
        let body: Value = match r {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => panic!("chromedriver refused a session: {e}; {INSTALL}"),
        };
        let session = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {}; {INSTALL}", body["value"]["message"]));
        browser.base = format!("{}/session/{session}", browser.base);
        // A window cannot be narrower than ~500 px; the viewport can, as a phone's is.
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600});
        browser
            .cmd("POST", "/goog/cdp/execute", json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics}))
            .await;
        browser
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test with its message.
    pub async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let answer: Value = request.send().await.expect("chromedriver answers").json().await.expect("JSON");
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("WebDriver {method} {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url})).await;
    }

    /// Runs `body` (a function body: `return ...`) in the page with `args`.
    pub async fn script(&self, body: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/sync", json!({"script": body, "args": args})).await
    }

    /// Waits until `body` returns something other than null/false/""; that value. Fails naming `what`.
    pub async fn wait(&self, what: &str, body: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.script(body, json!([])).await;
            if !(v.is_null() || v == Value::Bool(false) || v == json!("")) {
                return v;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "waited 15 s for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the element `css` (waiting for it to exist).
    pub async fn text(&self, css: &str) -> String {
        let js = format!("const e = document.querySelector({}); return e && e.innerText;", json!(css));
        let v = self.wait(&format!("{css} to exist"), &js).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let js = format!("return document.querySelector({});", json!(css));
        let v = self.wait(&format!("{css} to exist"), &js).await;
        v[ELEMENT].as_str().expect("an element reference").to_owned()
    }

    /// A real click (pointer events at the element's centre), as a person's.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd("POST", &format!("/element/{id}/click"), json!({})).await;
    }

    /// Clears the field `css`, then types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd("POST", &format!("/element/{id}/clear"), json!({})).await;
        self.cmd("POST", &format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Keys as typed into whatever has the focus.
    pub async fn keys(&self, text: &str) {
        let focused = self.cmd("GET", "/element/active", Value::Null).await;
        let id = focused[ELEMENT].as_str().expect("a focused element").to_owned();
        self.cmd("POST", &format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// The focused element, as `tag#id` or `tag[name]` or its text.
    pub async fn focused(&self) -> String {
        let js = "const e = document.activeElement; \
                  return e.tagName.toLowerCase() + (e.id ? '#' + e.id : e.name ? '[' + e.name + ']' : ':' + e.textContent.trim());";
        self.script(js, json!([])).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self.cmd("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("base64");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("screenshot directory");
        std::fs::write(path, bytes).expect("screenshot written");
    }

    /// What the page logged to the browser's console (and the browser about the page) since the last call.
    pub async fn console(&self) -> Vec<Value> {
        let v = self.cmd("POST", "/se/log", json!({"type": "browser"})).await;
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Browser {
    /// The requests the page sent since the last call: (URL, headers), from the browser's own network log.
    pub async fn requests(&self) -> Vec<(String, Value)> {
        let log = self.cmd("POST", "/se/log", json!({"type": "performance"})).await;
        let entries = log.as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .map(|m| {
                let request = &m["message"]["params"]["request"];
                (request["url"].as_str().unwrap_or_default().to_owned(), request["headers"].clone())
            })
            .collect()
    }

    /// Ends the session (and the browser); dropping it kills the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending chromedriver ends the browser it started.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
