#!/usr/bin/python3
"""RTC Edge end-to-end interop suite: a real Chromium running JsSIP calls real baresip phones registered at a
real Kamailio, through gatewayd, and back. Run it with `gateway/interop/run` (installs the peers, builds
gatewayd); this file is the orchestrator and expects everything in place:

    interop.py --gatewayd BIN --node-modules DIR --out DIR [--only N,N]

Everything listens on 127.0.0.1 on ports chosen free at start. Each scenario's verdict, tone frequencies and
levels, packet counts and loss per direction go to OUT/report.json and OUT/report.md; every process's log
and a pcap of the loopback traffic stay in OUT when a scenario fails. Whatever was started is stopped,
also on failure or Ctrl-C.
"""
import argparse, base64, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time, traceback, wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# What each side sends: two tones each, so that a wrong stream (echo, another call) cannot pass for the right one.
BROWSER_TONES = (440.0, 1000.0)
PHONE_TONES = (600.0, 1500.0)
DTMF_DIGITS = "159#"


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def free_port(kind=socket.SOCK_DGRAM, both=False):
    """A port free for UDP (and TCP when `both`) on 127.0.0.1."""
    while True:
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        try:
            if both:
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                t.bind(("127.0.0.1", port))
                t.close()
            return port
        except OSError:
            continue
        finally:
            s.close()


def wait_until(cond, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")


class Proc:
    """A child in its own process group; its output goes line by line to a log file and to memory."""

    def __init__(self, name, argv, out, env=None, stdin=False, on_line=None):
        self.name, self.lines, self.on_line = name, [], on_line
        self.logfile = open(out / f"{name}.log", "w", buffering=1)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  env={**os.environ, **(env or {})}, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            line = line.rstrip("\n")
            self.logfile.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            self.lines.append(line)
            if self.on_line:
                self.on_line(line)

    def grep(self, pattern, since=0):
        return [l for l in self.lines[since:] if re.search(pattern, l)]

    def wait_for(self, pattern, timeout, since=0):
        return wait_until(lambda: self.grep(pattern, since), timeout, f"{self.name}: /{pattern}/")[0]

    def signal(self, sig):
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace=5):
        if self.p.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.p.wait()
        return self.p.returncode


class Lab:
    """Every process of a run, stopped together."""

    def __init__(self, out):
        self.out, self.procs = out, []

    def start(self, *a, **kw):
        p = Proc(*a, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()


# ---------------------------------------------------------------- running and reporting (shared with routing.py)

def run_scenarios(scenarios, only, results, after_each):
    """Runs each (n, title, fn) not filtered out by `only` (a set, or None): fn(details) passes unless
    it raises; `after_each()` cleans up; each result goes to `results` and is printed."""
    for n, title, fn in scenarios:
        if only and n not in only:
            continue
        print(f"\n=== scenario {n}: {title}", flush=True)
        t0 = time.monotonic()
        result = {"scenario": n, "title": title, "details": {}}
        try:
            fn(result["details"])
            result["verdict"] = "pass"
        except Exception as e:
            result["verdict"] = "fail"
            result["error"] = f"{type(e).__name__}: {e}" if not isinstance(e, Failed) else str(e)
            traceback.print_exc()
        finally:
            after_each()
        result["seconds"] = round(time.monotonic() - t0, 1)
        print(f"--- scenario {n}: {result['verdict'].upper()} ({result['seconds']} s)"
              + (f": {result.get('error')}" if result["verdict"] == "fail" else ""), flush=True)
        print(json.dumps(result["details"], indent=1, default=str), flush=True)
        results.append(result)


def write_report(out, title, results):
    """OUT/report.json and OUT/report.md; True when there were results and all passed."""
    passed = sum(r["verdict"] == "pass" for r in results)
    summary = {"passed": passed, "failed": len(results) - passed, "scenarios": results}
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    md = [f"# {title}", "", f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {passed} of {len(results)} scenarios passed.", "",
          "| # | scenario | verdict | seconds |", "|---|---|---|---|"]
    for r in results:
        md.append(f"| {r['scenario']} | {r['title']} | {r['verdict']} | {r.get('seconds', '')} |")
    for r in results:
        md += ["", f"## {r['scenario']}. {r['title']}: {r['verdict']}"]
        if r.get("error"):
            md += ["", f"**Error:** {r['error']}"]
        for k, v in r.get("details", {}).items():
            md.append(f"- **{k}**: `{json.dumps(v, default=str)}`")
    (out / "report.md").write_text("\n".join(md) + "\n")
    return bool(results) and passed == len(results)


# ---------------------------------------------------------------- audio

def tone_wav(path, rate, tones, seconds=60):
    args = ["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(path), "synth", str(seconds)]
    for f in tones:
        args += ["sine", str(f)]
    subprocess.run(args + ["remix", "-", "gain", "-6"], check=True)


def read_wav(path):
    with wave.open(str(path)) as w:
        rate, ch, n = w.getframerate(), w.getnchannels(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64) / 32768.0
    return rate, x.reshape(-1, ch)[:, 0] if ch > 1 else x


def analyse(rate, x, expected):
    """Peaks of the spectrum (Hz) and the level (dBFS) of samples `x`; whether `expected` tones are the two
    strongest components, each within 2 % and at most 15 dB apart, at a level above -40 dBFS."""
    result = {"samples": int(len(x)), "seconds": round(len(x) / rate, 2) if rate else 0}
    if len(x) < rate // 2:
        return {**result, "ok": False, "why": "less than 0.5 s of audio"}
    x = x[len(x) // 10:]  # skip the start (jitter buffer filling, the tone's onset)
    rms = float(np.sqrt(np.mean(x ** 2)))
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    peaks = []
    for i in np.argsort(spec)[::-1]:
        if freqs[i] < 50:
            continue
        if all(abs(freqs[i] - f) > 40 for f, _ in peaks):
            peaks.append((float(freqs[i]), float(spec[i])))
        if len(peaks) >= 4:
            break
    level = 20 * np.log10(rms + 1e-12)
    found = []
    for f in expected:
        match = [(pf, m) for pf, m in peaks[:2] if abs(pf - f) <= 0.02 * f]
        found.append(match[0] if match else None)
    ok = all(found) and level > -40
    if ok:
        mags = [m for _, m in found]
        ok = 20 * np.log10(max(mags) / min(mags)) <= 15
    return {**result, "ok": bool(ok), "peaks_hz": [round(f, 1) for f, _ in peaks],
            "level_dbfs": round(float(level), 1), "expected_hz": list(expected)}


# ---------------------------------------------------------------- peers

class Browser:
    """Chromium + JsSIP (browser.js / page.html): commands in, events out."""

    def __init__(self, lab, name, tone, node_modules, profile):
        self.events, self.replies, self.next_id, self.name = [], {}, 0, name
        env = {"NODE_PATH": str(node_modules), "INTEROP_NODE": str(node_modules.parent)}
        self.proc = lab.start(name, ["node", str(HERE / "browser.js"), str(tone), str(profile)], lab.out, env=env,
                              stdin=True, on_line=self._line)
        self.wait_event("loaded", 60)

    def _line(self, line):
        try:
            m = json.loads(line)
        except ValueError:
            return
        if "event" in m:
            m["t"] = time.monotonic()
            self.events.append(m)
        elif "id" in m:
            self.replies[m["id"]] = m

    def do(self, op, *args, timeout=30):
        self.next_id += 1
        i = self.next_id
        self.proc.p.stdin.write(json.dumps({"id": i, "op": op, "args": list(args)}) + "\n")
        self.proc.p.stdin.flush()
        r = wait_until(lambda: self.replies.get(i), timeout, f"{self.name}: reply to {op}")
        check(r["ok"], f"{self.name}: {op} failed: {r.get('error')}")
        return r["result"]

    def mark(self):
        return len(self.events)

    def find(self, kind, since=0, pred=lambda e: True):
        return [e for e in self.events[since:] if e["event"] == kind and pred(e)]

    def wait_event(self, kind, timeout, since=0, pred=lambda e: True):
        fatal = lambda: [e for e in self.events if e["event"] in ("fatal", "pageerror")]
        def ready():
            check(not fatal(), f"{self.name}: {fatal()}")
            return self.find(kind, since, pred)
        return wait_until(ready, timeout, f"{self.name}: event {kind}")[0]

    def record(self, seconds, path):
        r = self.do("record", int(seconds * 1000), timeout=seconds + 30)
        check("pcm" in r, f"{self.name}: cannot record: {r}")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(r["rate"])
            w.writeframes(base64.b64decode(r["pcm"]))
        return read_wav(path)

    def quit(self):
        try:
            self.proc.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.p.stdin.flush()
            self.proc.p.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.proc.stop()


class Phone:
    """A baresip SIP phone registered at Kamailio, driven over ctrl_tcp (netstring JSON: commands, replies
    and the phone's events)."""

    def __init__(self, lab, name, kam_port, codecs, tone, srate, auto_answer, dirs):
        self.name, self.events, self.replies = name, [], {}
        self.home = dirs / name
        self.rec = self.home / "rec"
        self.rec.mkdir(parents=True, exist_ok=True)
        self.sip_port, self.ctrl_port = free_port(both=True), free_port(socket.SOCK_STREAM)
        rtp = free_port()
        (self.home / "accounts").write_text(
            f"<sip:{name}@127.0.0.1:{kam_port}>;auth_pass=secret;regint=600;"
            f"answermode={'auto' if auto_answer else 'manual'};audio_codecs={codecs}\n")
        (self.home / "config").write_text("\n".join([
            "poll_method epoll", f"sip_listen 127.0.0.1:{self.sip_port}", "net_interface 127.0.0.1",
            "call_local_timeout 120", "call_max_calls 4", "audio_buffer 100",
            "audio_player alsa,null", f"audio_source aufile,{tone}", "audio_alert alsa,null",
            f"ausrc_srate {srate}", "ausrc_channels 1", f"rtp_ports {rtp - rtp % 2 + 2}-{rtp - rtp % 2 + 101}",
            "rtcp_mux no", "jitter_buffer_delay 5-10", "rtp_stats yes", "audio_level no",
            f"snd_path {self.rec}", "module_path /usr/lib/baresip/modules",
            "module opus.so", "module g711.so", "module sndfile.so", "module aufile.so", "module alsa.so",
            "module_tmp uuid.so", "module_tmp account.so", "module_app menu.so", "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}", ""]))
        self.proc = lab.start(name, ["baresip", "-f", str(self.home)], lab.out)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port))
                break
            except OSError:
                check(time.monotonic() < deadline, f"{name}: no ctrl_tcp on {self.ctrl_port}")
                time.sleep(0.1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while True:
                colon = buf.find(b":")
                if colon < 0 or not buf[:colon].isdigit():
                    break
                n = int(buf[:colon])
                if len(buf) < colon + 1 + n + 1:
                    break
                msg = json.loads(buf[colon + 1:colon + 1 + n])
                buf = buf[colon + 1 + n + 1:]
                if msg.get("event"):
                    msg["t"] = time.monotonic()
                    self.events.append(msg)
                elif msg.get("response"):
                    self.replies[msg.get("token")] = msg

    def do(self, command, params=""):
        token = f"{command}-{time.monotonic_ns()}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        r = wait_until(lambda: self.replies.get(token), 10, f"{self.name}: reply to {command}")
        check(r.get("ok"), f"{self.name}: {command} {params}: {r.get('data')}")
        return r.get("data")

    def mark(self):
        return len(self.events)

    def find(self, kind, since=0):
        return [e for e in self.events[since:] if e.get("type") == kind]

    def wait_event(self, kind, timeout, since=0):
        return wait_until(lambda: self.find(kind, since), timeout, f"{self.name}: event {kind}")[0]

    def recordings(self):
        return sorted(self.rec.glob("*-dec.wav"), key=lambda p: p.stat().st_mtime)


class Gatewayd:
    """gatewayd with a generated configuration; its status comes from the sd_notify STATUS it sends (the
    same line systemd shows), its sockets from /proc."""

    def __init__(self, lab, binary, kam_port, workdir):
        self.udp, self.ws, self.wss = free_port(both=True), free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
        cert, key = workdir / "gateway.pem", workdir / "gateway.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
        base = 30000 + (os.getpid() % 200) * 8
        (workdir / "gatewayd.toml").write_text(f"""
[log]
level = "debug"
show_pii = true
[sip]
[[sip.listen]]
transport = "udp"
address = "127.0.0.1"
port = {self.udp}
[[sip.listen]]
transport = "ws"
address = "127.0.0.1"
port = {self.ws}
[[sip.listen]]
transport = "wss"
address = "127.0.0.1"
port = {self.wss}
[sip.tls]
certificate = "{cert}"
private_key = "{key}"
[sip.trunk]
address = "127.0.0.1"
port = {kam_port}
transport = "udp"
# Browsers' calls go to the PBX, and so do SIPp's (scenario 8), a SIP peer that is no trunk: routed
# only because this route names such peers on this host.
[[routes]]
name = "to-pbx"
source = ["browser", "peer"]
source_networks = ["127.0.0.0/8"]
trunks = ["trunk"]
[media]
port_min = {base}
port_max = {base + 1599}
inactivity_timeout_s = 5
""")
        # A socket of this run's own (not in the output folder another run may be clearing).
        self.notify_dir = tempfile.mkdtemp(prefix="interop-notify-")
        self.notify_path = Path(self.notify_dir) / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.status, self.status_at, self.ready = None, 0.0, False
        threading.Thread(target=self._notices, daemon=True).start()
        self.proc = lab.start("gatewayd", [str(binary), "--config", str(workdir / "gatewayd.toml")], lab.out,
                              env={"NOTIFY_SOCKET": str(self.notify_path), "WATCHDOG_USEC": "1000000",
                                   "GATEWAYD_LOG": "debug,edge_media=info"})
        wait_until(lambda: self.ready, 30, "gatewayd READY=1")

    def _notices(self):
        while True:
            data = self.notify.recv(4096).decode(errors="replace")
            for line in data.split("\n"):
                if line == "READY=1":
                    self.ready = True
                elif line.startswith("STATUS="):
                    self.status, self.status_at = line[7:], time.monotonic()

    def counts(self):
        """{'calls': n, 'ending': n, 'registered': n, 'media sessions': n, ...} from the latest STATUS (the
        numeric fields; `trunks up: 1/1` is not one)."""
        pairs = (p.split(":", 1) for p in (self.status or "").split(",") if ":" in p)
        return {k.strip(): int(v) for k, v in pairs if v.strip().isdigit()}

    def sockets(self):
        fd = Path(f"/proc/{self.proc.p.pid}/fd")
        return sum(1 for f in fd.iterdir() if os.readlink(f).startswith("socket:"))


# ---------------------------------------------------------------- Kamailio

KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "ctl.so"
modparam("usrloc", "db_mode", 0)
modparam("ctl", "binrpc", "unix:{ctl}")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (!sanity_check("17895", "7")) {{ exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ route(RELAY); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        if (!save("location")) {{ sl_reply_error(); exit; }}
        xlog("L_NOTICE", "REGISTERED $tu contact=$ct\\n");
        exit;
    }}
    if (is_method("INVITE")) {{ record_route(); }}
    if ($rU == "sipp") {{ $du = "sip:127.0.0.1:{sipp}"; route(RELAY); }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    route(RELAY);
}}
route[RELAY] {{
    if (!t_relay()) {{ sl_reply_error(); }}
    exit;
}}
"""


# ---------------------------------------------------------------- the suite

class Suite:
    def __init__(self, args):
        self.args, self.out = args, Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = self.out / "work"
        self.work.mkdir(exist_ok=True)
        self.lab = Lab(self.out)
        self.results = []
        self.node = Path(args.node_modules).resolve()

    def setup(self):
        self.browser_tone = self.work / "browser_tone.wav"
        tone_wav(self.browser_tone, 48000, BROWSER_TONES)  # Chromium loops it
        self.phone_tone_8k, self.phone_tone_48k = self.work / "phone_8k.wav", self.work / "phone_48k.wav"
        # baresip hangs up when its source file ends: longer than the longest call (scenario 6).
        seconds = self.args.session_seconds + 120
        tone_wav(self.phone_tone_8k, 8000, PHONE_TONES, seconds)
        tone_wav(self.phone_tone_48k, 48000, PHONE_TONES, seconds)
        self.pcap = self.out / "loopback.pcapng"
        self.tshark = None
        if subprocess.run(["sh", "-c", "command -v tshark"], capture_output=True).returncode == 0:
            self.tshark = self.lab.start("tshark", ["tshark", "-q", "-i", "lo", "-f", "udp or tcp", "-w", str(self.pcap)],
                                         self.out)
        self.kam_port, self.sipp_port = free_port(both=True), free_port()
        ctl = self.work / "kamailio_ctl"
        self.kamctl = ctl
        (self.work / "kamailio.cfg").write_text(KAMAILIO_CFG.format(port=self.kam_port, ctl=ctl, sipp=self.sipp_port))
        self.kamailio = self.lab.start("kamailio", ["kamailio", "-f", str(self.work / "kamailio.cfg"), "-DD", "-E",
                                                    "-m", "64", "-M", "8"], self.out)
        wait_until(lambda: ctl.exists(), 20, "Kamailio's control socket")
        self.gw = Gatewayd(self.lab, self.args.gatewayd, self.kam_port, self.work)
        phones = self.work / "phones"
        # bob: G.711 only, answers by itself. dave: Opus only, answers by itself. carol: G.711, answers when told.
        self.bob = Phone(self.lab, "bob", self.kam_port, "PCMU,PCMA", self.phone_tone_8k, 8000, True, phones)
        self.dave = Phone(self.lab, "dave", self.kam_port, "opus/48000/2", self.phone_tone_48k, 48000, True, phones)
        self.carol = Phone(self.lab, "carol", self.kam_port, "PCMU,PCMA", self.phone_tone_8k, 8000, False, phones)
        for who in ("bob", "dave", "carol"):
            self.kamailio.wait_for(f"REGISTERED sip:{who}@", 20)
        # The gateway's sockets with no browser and no call: every scenario must leave exactly these.
        self.baseline_sockets = self.gw.sockets()
        self.browsers = 0

    def browser(self, transport="ws", user="alice", auto_answer=False, session_timers=True):
        self.browsers += 1
        profile = self.work / f"chromium-{self.browsers}"
        b = Browser(self.lab, f"chromium-{self.browsers}", self.browser_tone, self.node, profile)
        port = self.gw.ws if transport == "ws" else self.gw.wss
        b.do("start", {"ws": f"{transport}://127.0.0.1:{port}", "uri": f"sip:{user}@127.0.0.1", "autoAnswer": auto_answer,
                       "sessionTimers": session_timers})
        e = b.wait_event("registered", 30)
        check(e["status"] == 200, f"REGISTER answered {e['status']}")
        return b

    def location(self, user):
        r = subprocess.run(["kamcmd", "-s", f"unix:{self.kamctl}", "ul.lookup", "location", f"{user}@127.0.0.1"],
                           capture_output=True, text=True)
        return r.stdout + r.stderr

    def run(self):
        scenarios = [
            (1, "JsSIP registers through the gateway (WS and WSS) to Kamailio", self.s1_register),
            (2, "JsSIP calls baresip: G.711-only and Opus phones, tones both ways, BYE from the browser", self.s2_call_out),
            (3, "baresip calls the JsSIP user through Kamailio and the gateway, BYE from the phone", self.s3_call_in),
            (4, "hold and resume from the browser, then from the phone", self.s4_hold),
            (5, "DTMF: JsSIP INFO digits arrive at baresip as RFC 4733", self.s5_dtmf),
            (6, "session timers: a call kept up past 2 x 90 s stays up", self.s6_session_timers),
            (7, "failure paths: 486, 404, CANCEL while ringing, the phone's network vanishes", self.s7_failures),
            (8, "50 sequential SIPp calls leave no call, socket or media session behind", self.s8_sipp),
        ]
        only = {int(x) for x in self.args.only.split(",")} if self.args.only else None
        try:
            self.setup()
        except Exception as e:
            traceback.print_exc()
            self.results.append({"scenario": 0, "title": "set-up", "verdict": "fail", "error": str(e)})
            return
        run_scenarios(scenarios, only, self.results, self.close_browsers)

    def close_browsers(self):
        for p in [p for p in self.lab.procs if p.name.startswith("chromium-")]:
            try:
                p.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
                p.p.stdin.flush()
                p.p.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                pass
            p.stop()
            self.lab.procs.remove(p)

    # ---- helpers shared by the call scenarios

    def talk(self, browser, phone, seconds, details, label, browser_codec=None):
        """Records both ends for `seconds` and checks each hears the other's tones; stats into details."""
        phone_files_before = set(phone.recordings())
        time.sleep(0.5)
        rate, heard = browser.record(seconds, self.work / f"{label}-browser-heard.wav")
        at_browser = analyse(rate, heard, PHONE_TONES)
        st = browser.do("stats")
        details[f"{label}: phone -> browser"] = {**at_browser, "codec": (st or {}).get("inbound", {}).get("codec"),
                                                  "packets": (st or {}).get("inbound", {}).get("packets"),
                                                  "lost": (st or {}).get("inbound", {}).get("lost")}
        details[f"{label}: browser -> phone (browser's view)"] = {
            "codec": (st or {}).get("outbound", {}).get("codec"), "packets": (st or {}).get("outbound", {}).get("packets"),
            "lost (RTCP from the far end)": ((st or {}).get("remoteInbound") or {}).get("lost")}
        details[f"{label}: transport"] = (st or {}).get("transport")
        check(at_browser["ok"], f"{label}: the browser did not hear the phone's tones: {at_browser}")
        if browser_codec:
            check((st["inbound"]["codec"] or "").lower() == browser_codec.lower(),
                  f"{label}: codec {st['inbound']['codec']}, expected {browser_codec}")
        return phone_files_before

    def phone_heard(self, phone, before, details, label):
        new = [p for p in phone.recordings() if p not in before] or phone.recordings()
        check(new, f"{label}: {phone.name} recorded nothing")
        rate, x = read_wav(new[-1])
        at_phone = analyse(rate, x, BROWSER_TONES)
        details[f"{label}: browser -> phone"] = {**at_phone, "file": new[-1].name}
        check(at_phone["ok"], f"{label}: {phone.name} did not hear the browser's tones: {at_phone}")

    def rtp_stats(self, phone, since, details, label):
        """baresip's RTP statistics, printed when the call closes (rtp_stats yes): packets sent and
        received, and the loss each way (toward the browser: as the browser's RTCP reports it, translated
        by the gateway)."""
        def row(name):
            rows = [l.split() for l in phone.proc.lines[since:] if l.strip().startswith(name + ":")]
            return rows[-1][-2:] if rows else [None, None]
        (sent, received), (lost_out, lost_in) = row("packets"), row("lost")
        details[f"{label}: {phone.name} RTP at hang-up"] = {
            "sent": sent, "received": received, "lost toward the browser (browser's RTCP)": lost_out,
            "lost toward the phone": lost_in}
        check(received and int(received) > 0, f"{label}: {phone.name} received no RTP")

    def wait_idle(self, what):
        # "ending": calls over whose last transactions still run out their timers (at most 32 s).
        since = time.monotonic()
        idle = lambda: self.gw.status_at > since and all(
            self.gw.counts().get(k) == 0 for k in ("calls", "ending", "media sessions"))
        try:
            wait_until(idle, 40, f"no call and no media session left after {what}")
        except Failed as e:
            raise Failed(f"{e} (status: {self.gw.status})")

    # ---- scenarios

    def s1_register(self, d):
        for transport, user in (("ws", "alice"), ("wss", "alicetls")):
            b = self.browser(transport, user)
            loc = self.location(user)
            d[f"{transport}: kamailio location of {user}"] = [l.strip() for l in loc.splitlines() if "Address" in l or "Received" in l]
            check(f"127.0.0.1:{self.gw.udp}" in loc, f"{user}: Kamailio's location does not point at the gateway:\n{loc}")
            check(".invalid" not in loc, f"{user}: the browser's .invalid Contact leaked to Kamailio:\n{loc}")
            b.quit()
            self.lab.procs.remove(b.proc)

    def call_phone(self, d, phone, codec, label):
        b = self.browser()
        mark, pmark, lmark = b.mark(), phone.mark(), len(phone.proc.lines)
        b.do("call", f"sip:{phone.name}@127.0.0.1")
        b.wait_event("confirmed", 20, mark)
        phone.wait_event("CALL_ESTABLISHED", 10, pmark)
        before = self.talk(b, phone, 4, d, label, codec)
        b.do("hangup")
        e = b.wait_event("ended", 10, mark)
        check(e["originator"] == "local", f"{label}: ended by {e}")
        phone.wait_event("CALL_CLOSED", 10, pmark)
        time.sleep(0.5)
        self.phone_heard(phone, before, d, label)
        self.rtp_stats(phone, lmark, d, label)
        self.wait_idle(label)
        b.quit()

    def s2_call_out(self, d):
        self.call_phone(d, self.bob, "audio/PCMU", "G.711 phone (bob)")
        self.call_phone(d, self.dave, "audio/opus", "Opus phone (dave)")

    def s3_call_in(self, d):
        b = self.browser(auto_answer=True)
        mark, pmark, lmark = b.mark(), self.bob.mark(), len(self.bob.proc.lines)
        self.bob.do("dial", f"sip:alice@127.0.0.1:{self.kam_port}")
        b.wait_event("incoming", 20, mark)
        b.wait_event("confirmed", 20, mark)
        self.bob.wait_event("CALL_ESTABLISHED", 10, pmark)
        before = self.talk(b, self.bob, 4, d, "bob calls alice")
        self.bob.do("hangup")
        e = b.wait_event("ended", 10, mark)
        check(e["originator"] == "remote", f"ended by {e}")
        self.bob.wait_event("CALL_CLOSED", 10, pmark)
        time.sleep(0.5)
        self.phone_heard(self.bob, before, d, "bob calls alice")
        self.rtp_stats(self.bob, lmark, d, "bob calls alice")
        self.wait_idle("the phone's BYE")

    def s4_hold(self, d):
        glines = len(self.gw.proc.lines)
        b = self.browser()
        mark, pmark = b.mark(), self.bob.mark()
        b.do("call", "sip:bob@127.0.0.1")
        b.wait_event("confirmed", 20, mark)
        self.bob.wait_event("CALL_ESTABLISHED", 10, pmark)
        self.talk(b, self.bob, 2, d, "before hold")
        m = b.mark()
        b.do("hold")
        b.wait_event("hold", 10, m)
        time.sleep(3)
        b.do("unhold")
        b.wait_event("unhold", 10, m)
        before = self.talk(b, self.bob, 3, d, "after the browser's resume")
        m = b.mark()
        self.bob.do("hold")
        b.wait_event("hold", 10, m, lambda e: e["originator"] == "remote")
        time.sleep(3)
        self.bob.do("resume")
        b.wait_event("unhold", 10, m, lambda e: e["originator"] == "remote")
        self.talk(b, self.bob, 3, d, "after the phone's resume")
        b.do("hangup")
        b.wait_event("ended", 10, mark)
        self.bob.wait_event("CALL_CLOSED", 10, pmark)
        time.sleep(0.5)
        self.phone_heard(self.bob, before, d, "after resumes")
        bad = self.gw.proc.grep(r"(?i)replay|srtp_rejected: [1-9]|srtp.*(error|fail)|dtls.*(fail|alert)", glines)
        d["gateway SRTP/DTLS errors"] = bad[:5]
        check(not bad, f"SRTP/DTLS errors in the gateway's log: {bad[:3]}")
        self.wait_idle("hold/resume")

    def s5_dtmf(self, d):
        # To the G.711 phone (telephone-event/8000 on the audio clock) and to the Opus phone (the event
        # clock must follow Opus's 48 kHz).
        for phone in (self.bob, self.dave):
            b = self.browser()
            mark, pmark = b.mark(), phone.mark()
            b.do("call", f"sip:{phone.name}@127.0.0.1")
            b.wait_event("confirmed", 20, mark)
            phone.wait_event("CALL_ESTABLISHED", 10, pmark)
            time.sleep(1)
            b.do("dtmf", DTMF_DIGITS)
            want = list(DTMF_DIGITS)
            got = lambda: [e.get("param") for e in phone.find("CALL_DTMF_START", pmark)]
            try:
                wait_until(lambda: len(got()) >= len(want), 15, f"DTMF at {phone.name}")
            finally:
                d[f"{phone.name}: digits sent (INFO)"] = DTMF_DIGITS
                d[f"{phone.name}: digits received (RFC 4733 events)"] = "".join(str(x) for x in got())
            check(got()[:len(want)] == want, f"{phone.name} received {got()}, expected {want}")
            b.do("hangup")
            phone.wait_event("CALL_CLOSED", 10, pmark)
            self.wait_idle("DTMF call")
            b.quit()

    def s6_session_timers(self, d):
        b = self.browser()
        mark, pmark = b.mark(), self.bob.mark()
        glines = len(self.gw.proc.lines)
        b.do("call", "sip:bob@127.0.0.1")
        b.wait_event("confirmed", 20, mark)
        self.bob.wait_event("CALL_ESTABLISHED", 10, pmark)
        hold = self.args.session_seconds
        t0 = time.monotonic()
        while time.monotonic() - t0 < hold:
            check(not b.find("ended", mark) and not b.find("failed", mark), f"call ended after {time.monotonic() - t0:.0f} s: {b.find('ended', mark)}")
            check(not self.bob.find("CALL_CLOSED", pmark), f"bob's call closed after {time.monotonic() - t0:.0f} s")
            time.sleep(1)
        check(b.do("inCall"), "the browser's call is no longer established")
        refreshes = self.gw.proc.grep(r"UPDATE", glines)
        d["held for seconds"] = round(time.monotonic() - t0)
        d["gateway log lines naming UPDATE (refreshes)"] = len(refreshes)
        check(refreshes, "no session refresh (UPDATE) seen by the gateway")
        self.talk(b, self.bob, 2, d, f"after {hold} s")
        b.do("hangup")
        self.bob.wait_event("CALL_CLOSED", 10, pmark)
        self.wait_idle("session timer call")

    def s7_failures(self, d):
        b = self.browser()
        # 486: carol rejects.
        mark, pmark = b.mark(), self.carol.mark()
        b.do("call", "sip:carol@127.0.0.1")
        self.carol.wait_event("CALL_INCOMING", 15, pmark)
        self.carol.do("hangup")
        e = b.wait_event("failed", 15, mark)
        d["busy"] = e
        check(e["status"] == 486, f"busy: the browser saw {e}")
        self.wait_idle("486")
        # 404: nobody.
        mark = b.mark()
        b.do("call", "sip:nobody@127.0.0.1")
        e = b.wait_event("failed", 15, mark)
        d["not found"] = e
        check(e["status"] == 404, f"not found: the browser saw {e}")
        self.wait_idle("404")
        # CANCEL while carol rings.
        mark, pmark = b.mark(), self.carol.mark()
        b.do("call", "sip:carol@127.0.0.1")
        self.carol.wait_event("CALL_INCOMING", 15, pmark)
        b.wait_event("progress", 10, mark)
        b.do("hangup")
        e = b.wait_event("failed", 15, mark)
        d["cancel"] = e
        check(e["originator"] == "local" and e["cause"] == "Canceled", f"cancel: the browser saw {e}")
        self.carol.wait_event("CALL_CLOSED", 15, pmark)
        self.wait_idle("CANCEL")
        # The phone's network vanishes mid-call: bob is frozen (no RTP, no SIP); RTP inactivity ends the call.
        mark, pmark = b.mark(), self.bob.mark()
        b.do("call", "sip:bob@127.0.0.1")
        b.wait_event("confirmed", 20, mark)
        self.bob.wait_event("CALL_ESTABLISHED", 10, pmark)
        time.sleep(1)
        t0 = time.monotonic()
        self.bob.proc.signal(signal.SIGSTOP)
        try:
            e = b.wait_event("ended", 20, mark)
        finally:
            self.bob.proc.signal(signal.SIGCONT)
        d["network gone"] = {**e, "ended after s": round(e["t"] - t0, 1)}
        check(e["originator"] == "remote", f"network gone: {e}")
        self.bob.wait_event("CALL_CLOSED", 15, pmark)
        self.wait_idle("the phone vanished")

    def s8_sipp(self, d):
        uas = self.lab.start("sipp-uas", ["sipp", "-sf", str(HERE / "sipp_uas.xml"), "-i", "127.0.0.1", "-p", str(self.sipp_port), "-nostdin"],
                             self.out)
        time.sleep(0.5)
        uac_port = free_port()
        r = subprocess.run(["sipp", "-sn", "uac", f"127.0.0.1:{self.gw.udp}", "-s", "sipp", "-i", "127.0.0.1",
                            "-p", str(uac_port), "-m", "50", "-l", "1", "-r", "10", "-nostdin", "-timeout", "120s",
                            "-trace_stat", "-stf", str(self.out / "sipp-uac-stat.csv")],
                           capture_output=True, text=True, cwd=self.work)
        (self.out / "sipp-uac.log").write_text(r.stdout + r.stderr)
        stats = (self.out / "sipp-uac-stat.csv").read_text().splitlines() if (self.out / "sipp-uac-stat.csv").exists() else []
        row = dict(zip(stats[0].split(";"), stats[-1].split(";"))) if len(stats) >= 2 else {}
        d["successful calls"], d["failed calls"] = row.get("SuccessfulCall(C)"), row.get("FailedCall(C)")
        check(r.returncode == 0, f"sipp uac exited {r.returncode}: {r.stdout[-400:]}{r.stderr[-400:]}")
        check(row.get("SuccessfulCall(C)") == "50", f"successful calls: {row.get('SuccessfulCall(C)')}")
        self.wait_idle("SIPp calls")
        uas.stop()
        d["gateway status"] = self.gw.status
        d["gateway sockets at start / now"] = [self.baseline_sockets, self.gw.sockets()]
        check(self.gw.sockets() == self.baseline_sockets,
              f"sockets at start {self.baseline_sockets}, now {self.gw.sockets()}: {os.listdir(f'/proc/{self.gw.proc.p.pid}/fd')}")

    # ---- report

    def report(self):
        return write_report(self.out, "RTC Edge interop report", self.results)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gatewayd", required=True)
    ap.add_argument("--node-modules", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--session-seconds", type=int, default=190)
    args = ap.parse_args()
    suite = Suite(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        suite.run()
    finally:
        suite.close_browsers()
        suite.lab.stop_all()
        if getattr(suite, "gw", None):
            shutil.rmtree(suite.gw.notify_dir, ignore_errors=True)
        ok = suite.report()
    print(f"\nreport: {suite.out / 'report.md'}")
    print(f"interop: {sum(r['verdict'] == 'pass' for r in suite.results)} passed, "
          f"{sum(r['verdict'] != 'pass' for r in suite.results)} failed")
    if ok:
        for f in ["loopback.pcapng"]:
            (suite.out / f).unlink(missing_ok=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
