#!/usr/bin/env python3
"""The web UI suite against a real gatewayd (HTTPS, self-signed certificate made at start):

1. ui.js: a new user in real headless Chromium (playwright-core): first boot, wizard, dashboard,
   a trunk change seen through the REST API, an invalid bundle refused, logs; screenshots of each page.
2. schemathesis (PyPI): the live server checked against its own OpenAPI document (every operation but
   the ones that end the session), all checks.

Writes report.md and the screenshots into --out; prints `web: N passed, M failed`; exit 0 only if all
passed. Always stops what it started."""

import argparse
import http.cookiejar
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSWORD = "edge-ui-test-Pass-1"  # ui.js's default


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(binary, work):
    port, sip = free_port(), free_port(socket.SOCK_DGRAM)
    for d in ("keys", "incoming", "state"):
        (work / d).mkdir(parents=True, exist_ok=True)
    (work / "board").write_text("qemu-x86_64\n")
    (work / "version").write_text("0.1.0\n")
    config = work / "gatewayd.toml"
    config.write_text(f"""schema = 2
[sip]
[[sip.listen]]
transport = "udp"
address = "127.0.0.1"
port = {sip}

[media]
port_min = 28600
port_max = 28699

[web]
address = "127.0.0.1"
port = {port}
https = true
state_dir = "{work}/state"
network_file = "{work}/state/network.toml"
metrics_token = "schemathesis-metrics-token-0123"

[web.update]
incoming = "{work}/incoming"
keys = "{work}/keys"
board_file = "{work}/board"
version_file = "{work}/version"
""")
    log = open(work / "gatewayd.log", "w")
    proc = subprocess.Popen([binary, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "GATEWAYD_LOG": "info"}, start_new_session=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gatewayd did not serve the web UI on {port}; see {work}/gatewayd.log")


def login(port):
    """Logs in like a script would: (session token, CSRF token)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                         urllib.request.HTTPCookieProcessor(jar))
    req = urllib.request.Request(f"https://127.0.0.1:{port}/api/login", method="POST",
                                 data=json.dumps({"password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    csrf = json.load(opener.open(req, timeout=10))["csrf"]
    session = next(c.value for c in jar if c.name == "edge_session")
    return session, csrf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gatewayd", required=True)
    ap.add_argument("--node-modules", required=True)
    ap.add_argument("--schemathesis", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    proc, port = start_gateway(args.gatewayd, out / "work")
    url = f"https://127.0.0.1:{port}"
    try:
        print(f"=== ui: a new user in headless Chromium ({url})", flush=True)
        ui = subprocess.run(["node", str(HERE / "ui.js"), "--url", url, "--out", str(out / "screens")],
                            env={**os.environ, "NODE_PATH": args.node_modules}, capture_output=True,
                            text=True, timeout=600)
        sys.stdout.write(ui.stdout + ui.stderr)
        steps = [l for l in ui.stdout.splitlines() if l.startswith(("PASS ", "FAIL "))]
        results.append(("ui: first boot → wizard → dashboard → trunk change → REST → bad bundle → logs",
                        ui.returncode == 0 and steps and all(l.startswith("PASS") for l in steps),
                        f"{sum(l.startswith('PASS') for l in steps)}/{len(steps)} steps, screenshots in {out / 'screens'}"))

        print("=== schemathesis: the live API against openapi.json", flush=True)
        session, csrf = login(port)
        env = {**os.environ, "EDGE_SESSION": session, "EDGE_CSRF": csrf,
               "EDGE_METRICS_TOKEN": "schemathesis-metrics-token-0123", "NO_COLOR": "1"}
        st = subprocess.run(
            [args.schemathesis, "--config-file", str(HERE / "schemathesis.toml"), "run",
             f"{url}/api/openapi.json", "--tls-verify", "false", "--checks", "all",
             # These end or change the session the run uses; the Rust tests (tests/web.rs) cover them.
             "--exclude-path", "/api/logout", "--exclude-path", "/api/password",
             "--exclude-path", "/api/setup", "--exclude-path", "/api/login",
             "--max-examples", "25", "--workers", "1", "--seed", "1", "--no-color",
             "--report", "junit", "--report-dir", str(out / "schemathesis")],
            env=env, cwd=out, capture_output=True, text=True, timeout=900)
        sys.stdout.write(st.stdout[-6000:] + st.stderr[-2000:])
        summary = next((l.strip("= ") for l in reversed(st.stdout.splitlines()) if " in " in l and "=" in l), "")
        results.append(("schemathesis: every operation against the OpenAPI document, all checks",
                        st.returncode == 0, summary))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"
        results.append(("gatewayd stops cleanly on SIGTERM", code == 0, f"exit {code}"))

    passed = sum(ok for _, ok, _ in results)
    report = ["# RTC Edge web UI suite", "", "| check | verdict | detail |", "|---|---|---|"]
    report += [f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |" for name, ok, detail in results]
    (out / "report.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    print(f"web: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
