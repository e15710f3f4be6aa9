"""Headless Chromium opens xpra's HTML5 client from the relay over https, connects back over
wss through the same port, logs in, and the session's xterm appears on the page; keys typed
in the page reach the session's shell. The screenshot is kept as a test artifact
($XR_ARTIFACT_DIR, else artifacts/ beside the interop run dirs)."""

import contextlib
import os
import shutil
import subprocess
import time

import harness
from harness import check

TARGETS = ("relay",)
CHROMEDRIVER = "/usr/bin/chromedriver"


def _make_cert(run):
    d = run.mkdir("tls-browser")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextlib.contextmanager
def fixture(run):
    cert, key = _make_cert(run)
    with harness.Setup(run, auth="sqlite", name="browser",
                       relay_args=["--ssl-cert=%s" % cert, "--ssl-key=%s" % key]) as setup:
        srv = setup.server()
        second = setup.server()
        setup.user("alice", "alice-pw", [srv], via="unix")
        setup.user("bob", "bob-pw", [srv, second], via="unix")  # two sessions: picks one in the URL
        setup.start()
        yield setup


@contextlib.contextmanager
def _browser(run):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        harness.skip("python3-selenium is not installed")
    if not os.access(CHROMEDRIVER, os.X_OK):
        harness.skip("chromium-driver is not installed")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--ignore-certificate-errors",
              "--user-data-dir=%s" % run.mkdir("chromium-profile")):
        opts.add_argument(a)
    opts.accept_insecure_certs = True
    service = Service(CHROMEDRIVER, log_output=run.path("chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _url(port, user, password, display=None):
    return ("https://localhost:%d/index.html?server=localhost&port=%d&ssl=true&username=%s&password=%s"
            "&sound=false&video=false&remote_logging=false&clipboard=false&printing=false&file_transfer=false%s"
            % (port, port, user, password, "" if display is None else "&display=%s" % display))


def _wait_window(run, driver, title_text):
    from selenium.webdriver.common.by import By

    def titled():
        for el in driver.find_elements(By.CSS_SELECTOR, "span.windowtitle"):
            if title_text in (el.text or ""):
                return el
        return None
    try:
        return harness.wait_until(titled, 60, interval=0.5, what="the window '%s' on the page" % title_text)
    except harness.TestFailure:
        driver.save_screenshot(run.path("browser-failed.png"))
        raise


def test_html5_client_over_https_and_wss(run, fx):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains
    srv = fx.servers[0]
    port = fx.gate.port
    start = harness.log_size(fx.gate_log)
    with _browser(run) as driver:
        driver.get(_url(port, "alice", "alice-pw"))
        title = _wait_window(run, driver, srv.title)
        log = harness.read_text(fx.gate_log)[start:]
        check("transport wss" in log, "the relay log names no wss login:\n%s" % log[-1500:])
        wid = title.get_attribute("id").replace("title", "")
        canvases = driver.find_elements(By.XPATH, "//div[@id='%s']//canvas" % wid)
        check(canvases, "no canvas in the page's window %s" % wid)
        canvas = canvases[0]
        # keys typed in the page reach the session's shell
        path = os.path.join(srv.workdir, "browser-%d" % (int(time.time() * 1000) % 100000))
        ActionChains(driver).move_to_element(canvas).click().perform()
        time.sleep(0.5)
        ActionChains(driver).send_keys("echo browser > %s\n" % path).perform()
        harness.wait_until(lambda: os.path.exists(path) and harness.read_text(path).strip() == "browser", 30,
                           what="file %s written by the session's shell from keys typed in the page" % path)
        shot = run.path("browser-xterm.png")
        driver.save_screenshot(shot)
        check(os.path.getsize(shot) > 1000, "empty screenshot")
        # kept beside the run dirs (which are removed when everything passed)
        keep = os.environ.get("XR_ARTIFACT_DIR") or os.path.join(os.path.dirname(run.dir), "artifacts")
        os.makedirs(keep, exist_ok=True)
        shutil.copy(shot, os.path.join(keep, "browser-xterm.png"))


def test_browser_user_picks_a_session(run, fx):
    """A user with two sessions picks one as a tcp client does with /N: index.html?display=:N
    (xpra's HTML5 client puts it in its hello's "display")."""
    second = fx.servers[1]
    with _browser(run) as driver:
        driver.get(_url(fx.gate.port, "bob", "bob-pw", display=":%d" % second.display))
        _wait_window(run, driver, second.title)
        from selenium.webdriver.common.by import By
        titles = [el.text for el in driver.find_elements(By.CSS_SELECTOR, "span.windowtitle")]
        check(fx.servers[0].title not in " ".join(titles), "the other session's window is on the page: %s" % titles)
