#!/usr/bin/python3
"""RTC Edge routing suite: gatewayd's routing and policy (issue 9) against real peers on 127.0.0.1. SIPp UAS
instances are the trunks (each on its own port), a SIPp UAC places the calls as trunk `pbx`, a real
Kamailio is the registrar, and 100 hand-written WebSocket "browsers" register through the gateway. Run it with
`gateway/interop/run routing` (builds gatewayd); this file expects sipp, kamailio and kamcmd in place:

    routing.py --gatewayd BIN --out DIR [--only N,N]

Every scenario starts its own gatewayd with its own configuration and its own peers, and stops them after.
Counts come from the peers (SIPp -trace_counts / -trace_stat CSVs, Kamailio's log), not from the gateway.
Verdicts and numbers go to OUT/report.json and OUT/report.md, every process's log and SIPp's CSVs stay in OUT.
"""
import argparse, asyncio, base64, hashlib, json, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time, traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop  # noqa: E402
from interop import KAMAILIO_CFG, Failed, Lab, check, free_port, wait_until  # noqa: E402

HERE = Path(__file__).resolve().parent
SIPP = HERE / "sipp"


# ---------------------------------------------------------------- gatewayd with a routing configuration

class Gatewayd(interop.Gatewayd):
    """interop.Gatewayd's sd_notify reading, with a configuration of the scenario's own: UDP and WS
    listeners, no per-source rate limit (every peer here is 127.0.0.1), and `body` (trunks, routes, ...)."""

    def __init__(self, lab, binary, workdir, name, body):
        self.udp, self.ws = free_port(both=True), free_port(socket.SOCK_STREAM)
        base = 17000 + (os.getpid() % 6) * 2500
        self.config = workdir / f"{name}.toml"
        self.config.write_text(f"""schema = 2
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
[sip.limits]
per_source_rate = 0
[media]
port_min = {base}
port_max = {base + 2499}
inactivity_timeout_s = 60
{body}
""")
        self.notify_dir = tempfile.mkdtemp(prefix="routing-notify-")
        self.notify_path = Path(self.notify_dir) / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.status, self.status_at, self.ready = None, 0.0, False
        threading.Thread(target=self._notices, daemon=True).start()
        self.proc = lab.start(name, [str(binary), "--config", str(self.config)], lab.out,
                              env={"NOTIFY_SOCKET": str(self.notify_path), "WATCHDOG_USEC": "1000000",
                                   "GATEWAYD_LOG": "debug,edge_media=info"})
        try:
            wait_until(lambda: self.ready or self.proc.p.poll() is not None, 30, "gatewayd READY=1")
        except Failed:
            raise Failed(f"gatewayd not ready in 30 s: {self.proc.lines[-5:]}")
        check(self.ready, f"gatewayd exited {self.proc.p.returncode}: {self.proc.lines[-8:]}")

    def _notices(self):
        try:
            super()._notices()
        except OSError:
            pass  # the socket was closed at the end

    def counts(self):
        """Every `name: n` (and `name: n/m` as n) in the latest STATUS; a name said twice (the routing
        engine's summary repeats `calls`) keeps its first value."""
        found = {}
        for k, v in re.findall(r"([A-Za-z][A-Za-z ]*?): (\d+)", self.status or ""):
            found.setdefault(k.strip(), int(v))
        return found

    def trunks_up(self):
        m = re.search(r"trunks up: (\d+)/(\d+)", self.status or "")
        return (int(m.group(1)), int(m.group(2))) if m else None

    def close(self, lab):
        self.proc.stop()
        if self.proc in lab.procs:
            lab.procs.remove(self.proc)
        self.notify.close()
        shutil.rmtree(self.notify_dir, ignore_errors=True)


def trunk(name, port, **extra):
    lines = [f'[[trunks]]', f'name = "{name}"', 'address = "127.0.0.1"', f"port = {port}", 'transport = "udp"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def route(name, trunks, strategy="priority", weights=None, source='["trunk:pbx"]'):
    lines = ["[[routes]]", f'name = "{name}"', f"source = {source}", f"trunks = {json.dumps(trunks)}",
             f'strategy = "{strategy}"']
    if weights:
        lines.append(f"weights = {json.dumps(weights)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- SIPp

def in_dir(d):
    """argv prefix: run the command in folder `d` (SIPp writes its -trace_counts CSV into its working
    directory, and Lab.start has no cwd); exec keeps the process id the command's."""
    return ["sh", "-c", 'cd "$0" && exec "$@"', str(d)]


def csv_last(path):
    """The last row of a SIPp CSV (-trace_stat / -trace_counts) as {column: value}."""
    if not path.exists():
        return {}
    rows = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].split(";"), rows[-1].split(";")))


class Trunk:
    """A SIPp UAS playing a trunk, on its own port, in its own folder; counts what it received with
    -trace_counts, dumped every second."""

    def __init__(self, lab, name, scenario, workdir):
        self.name, self.port = name, free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.scenario = scenario
        self.proc = lab.start(name, in_dir(self.dir) + ["sipp", "-sf", str(SIPP / scenario), "-i", "127.0.0.1", "-p", str(self.port),
                                     "-nostdin", "-trace_counts", "-fd", "1", "-aa"], lab.out)
        # Listening once its port is taken.
        wait_until(self._listening, 10, f"{name}: SIPp listening on {self.port}")

    def _listening(self):
        check(self.proc.p.poll() is None, f"{self.name}: sipp exited {self.proc.p.returncode}: {self.proc.lines[-5:]}")
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", self.port))
            s.close()
            return False
        except OSError:
            return True

    def counts(self):
        files = sorted(self.dir.glob("*_counts.csv"))
        return csv_last(files[-1]) if files else {}

    def received(self, method):
        """How many `method` requests the scenario's first recv of it saw (0 before any dump)."""
        c = self.counts()
        for k, v in c.items():
            if re.fullmatch(rf"\d+_{method}_Recv", k):
                return int(v)
        return 0

    def settled(self, timeout=10):
        """Waits until the counts stop moving (two dumps alike, after `-fd 1`), returns them."""
        last, same = None, 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = {k: v for k, v in self.counts().items() if k not in ("CurrentTime", "ElapsedTime")}
            same = same + 1 if c == last and c else 0
            if same >= 2:
                break
            last = c
            time.sleep(1)
        return self.counts()


def uac(workdir, name, gw, calls, rate, limit, scenario=None, extra=(), timeout=120, background_lab=None):
    """A SIPp UAC (trunk `pbx`) placing `calls` calls to gatewayd's UDP listener. Returns the finished
    result, or (with background_lab) the running Proc plus the paths to read afterwards."""
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    stat = d / "stat.csv"
    argv = ["sipp"] + (["-sf", str(SIPP / scenario)] if scenario else ["-sn", "uac"]) + [
        f"127.0.0.1:{gw.udp}", "-s", "1000", "-i", "127.0.0.1", "-p", str(gw.uac_port),
        "-m", str(calls), "-r", str(rate), "-l", str(limit), "-nostdin", "-timeout", f"{timeout}s",
        # A call waiting longer than this for any message is aborted (a failed call) rather than kept forever.
        "-recv_timeout", "40s",
        "-trace_stat", "-stf", str(stat), "-fd", "1", "-trace_counts", "-trace_err", "-error_file", str(d / "errors.log"),
        *extra]
    if background_lab:
        p = background_lab.start(name, in_dir(d) + argv, background_lab.out)
        return p, d
    r = subprocess.run(argv, capture_output=True, text=True, cwd=d, timeout=timeout + 30)
    (workdir.parent.parent / f"{name}.log").write_text(r.stdout[-20000:] + r.stderr)  # OUT/, beside the others
    return uac_result(d, r.returncode)


def uac_result(d, rc):
    row = csv_last(d / "stat.csv")
    counts = sorted(d.glob("*_counts.csv"))
    return {"rc": rc, "successful": int(row.get("SuccessfulCall(C)", -1)), "failed": int(row.get("FailedCall(C)", -1)),
            "created": int(row.get("TotalCallCreated", -1)), "counts": csv_last(counts[-1]) if counts else {}, "dir": d}


def uac_summary(r):
    return {"calls placed": r["created"], "successful": r["successful"], "failed": r["failed"], "sipp exit": r["rc"]}


# ---------------------------------------------------------------- WebSocket browsers (RFC 6455 + RFC 7118)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsBrowser:
    """A minimal SIP-over-WebSocket client: the handshake (subprotocol `sip`), masked text frames out,
    frames in (ping answered, fragments joined), one REGISTER at a time."""

    def __init__(self, n, port):
        self.n, self.port, self.user = n, port, f"user{n}"
        self.call_id = f"reg-{n}-{os.urandom(6).hex()}@routing.invalid"
        self.tag, self.host = os.urandom(5).hex(), f"{os.urandom(4).hex()}.invalid"
        self.cseq, self.results, self.inbox = 0, [], asyncio.Queue()

    async def connect(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.w.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"
                      f"Origin: http://127.0.0.1\r\n\r\n").encode())
        head = (await asyncio.wait_for(self.r.readuntil(b"\r\n\r\n"), 10)).decode(errors="replace")
        check(head.startswith("HTTP/1.1 101"), f"{self.user}: WebSocket handshake answered {head.splitlines()[0]!r}")
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in head.split("\r\n")[1:] if ":" in l}
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        check(headers.get("sec-websocket-accept") == accept, f"{self.user}: bad Sec-WebSocket-Accept {headers}")
        check(headers.get("sec-websocket-protocol", "").lower() == "sip", f"{self.user}: subprotocol {headers}")
        self.reader = asyncio.create_task(self._read())

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    async def _read(self):
        parts, kind = [], None
        try:
            while True:
                b0, b1 = await self.r.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(await self.r.readexactly(2), "big")
                elif n == 127:
                    n = int.from_bytes(await self.r.readexactly(8), "big")
                mask = await self.r.readexactly(4) if b1 & 0x80 else None
                data = await self.r.readexactly(n)
                if mask:
                    data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
                op = b0 & 0x0F
                if op == 0x9:
                    self.w.write(self._frame(0xA, data))
                    continue
                if op == 0x8:
                    await self.inbox.put(None)
                    return
                if op in (0x1, 0x2):
                    parts, kind = [data], op
                elif op == 0x0 and kind:
                    parts.append(data)
                else:
                    continue
                if b0 & 0x80:
                    await self._message(b"".join(parts).decode(errors="replace"))
                    parts, kind = [], None
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.inbox.put(None)

    async def _message(self, text):
        if text.startswith("SIP/2.0 "):
            await self.inbox.put(text)
            return
        # A request from the gateway (none expected while only registering): answer 200 so it ends.
        lines = text.split("\r\n")
        keep = [l for l in lines[1:] if l.split(":", 1)[0].strip().lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")]
        self.w.write(self._frame(0x1, ("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode()))

    async def register(self):
        self.cseq += 1
        branch = "z9hG4bK" + os.urandom(8).hex()
        msg = (f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
               f"Via: SIP/2.0/WS {self.host};branch={branch}\r\n"
               f"Max-Forwards: 69\r\n"
               f"To: <sip:{self.user}@127.0.0.1>\r\n"
               f"From: <sip:{self.user}@127.0.0.1>;tag={self.tag}\r\n"
               f"Call-ID: {self.call_id}\r\n"
               f"CSeq: {self.cseq} REGISTER\r\n"
               f"Contact: <sip:xyz{self.n}@{self.host};transport=ws>;expires=60\r\n"
               f"Expires: 60\r\n"
               f"Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n"
               f"Supported: path,outbound\r\n"
               f"User-Agent: routing.py ws browser\r\n"
               f"Content-Length: 0\r\n\r\n")
        t0 = time.monotonic()
        self.w.write(self._frame(0x1, msg.encode()))
        await self.w.drain()
        status = None
        try:
            while True:
                m = await asyncio.wait_for(self.inbox.get(), 15)
                if m is None:
                    status = "connection closed"
                    break
                cseq = re.search(r"(?im)^(?:CSeq|c):\s*(\d+)\s+REGISTER", m)
                code = int(m.split(" ", 2)[1])
                if not cseq or int(cseq.group(1)) != self.cseq or code < 200:
                    continue
                status = code
                break
        except asyncio.TimeoutError:
            status = "no answer in 15 s"
        self.results.append({"cseq": self.cseq, "status": status, "ms": round((time.monotonic() - t0) * 1000)})
        return status

    async def close(self):
        try:
            self.w.write(self._frame(0x8, (1000).to_bytes(2, "big")))
            await self.w.drain()
            self.w.close()
        except (ConnectionError, RuntimeError):
            pass
        self.reader.cancel()


async def browsers_run(port, count, every, seconds, stagger, progress):
    """`count` browsers, each REGISTERing at t = 0, every, 2 every, ... <= seconds (staggered by `stagger`
    s per browser); returns them (their results) once the last answer arrived."""
    bs = [WsBrowser(i + 1, port) for i in range(count)]
    await asyncio.gather(*(b.connect() for b in bs))
    t0 = time.monotonic()

    async def life(b):
        k = 0
        while k * every <= seconds:
            delay = t0 + b.n * stagger + k * every - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await b.register()
            k += 1

    async def report():
        while True:
            await asyncio.sleep(30)
            progress(sum(len(b.results) for b in bs), round(time.monotonic() - t0))

    rep = asyncio.create_task(report())
    try:
        await asyncio.gather(*(life(b) for b in bs))
    finally:
        rep.cancel()
    return bs, bs  # the caller closes them after counting at Kamailio


async def browsers_close(bs):
    await asyncio.gather(*(b.close() for b in bs), return_exceptions=True)


# ---------------------------------------------------------------- the suite

class Suite:
    def __init__(self, args):
        self.args, self.out = args, Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = self.out / "work"
        self.work.mkdir(exist_ok=True)
        self.lab = Lab(self.out)
        self.results = []
        self.gw = None

    def gatewayd(self, name, body, uac_port=None):
        gw = Gatewayd(self.lab, self.args.gatewayd, self.work, name, body)
        gw.uac_port = uac_port
        self.gw = gw
        return gw

    def finish(self, d, gw):
        """Records the gateway's final STATUS (calls left, after up to 5 s) and stops it."""
        try:
            wait_until(lambda: gw.counts().get("calls") == 0, 5, "no call left")
        except Failed:
            pass
        d["gateway status at the end"] = gw.status
        gw.close(self.lab)
        self.gw = None

    def scenario_dir(self, n):
        d = self.work / f"s{n}"
        d.mkdir(exist_ok=True)
        return d

    # ---- 1. weighted split

    def s1_weighted(self, d):
        work = self.scenario_dir(1)
        c1, c2 = Trunk(self.lab, "s1-c1", "trunk_uas.xml", work), Trunk(self.lab, "s1-c2", "trunk_uas.xml", work)
        uac_port = free_port()
        calls = self.args.calls
        gw = self.gatewayd("s1-gatewayd", trunk("pbx", uac_port) + trunk("c1", c1.port) + trunk("c2", c2.port)
                           + route("split", ["c1", "c2"], "weighted", [70, 30]), uac_port)
        t0 = time.monotonic()
        r = uac(work, "s1-uac", gw, calls, 50, 100, timeout=calls // 50 + 90)
        d["UAC"] = {**uac_summary(r), "seconds": round(time.monotonic() - t0, 1), "rate cps": 50}
        c1.settled(), c2.settled()
        n1, n2 = c1.received("INVITE"), c2.received("INVITE")
        total = n1 + n2
        share = 100.0 * n1 / total if total else 0.0
        d["INVITEs answered"] = {"c1": n1, "c2": n2}
        d["c1 share % (want 70 +- 5)"] = round(share, 2)
        d["c2 share % (want 30 +- 5)"] = round(100 - share, 2) if total else 0
        d["deviation from 70 % (percentage points)"] = round(abs(share - 70), 2)
        self.finish(d, gw)
        check(r["successful"] == calls and r["failed"] == 0, f"UAC: {r['successful']} successful, {r['failed']} failed of {calls}")
        check(total == calls, f"the trunks answered {total} INVITEs, expected {calls} (c1 {n1}, c2 {n2})")
        check(abs(share - 70) <= 5, f"c1's share {share:.1f} % is not within 5 points of 70 %")

    # ---- 2. a monitored trunk dies mid-test

    def s2_trunk_down(self, d):
        work = self.scenario_dir(2)
        c1, c2 = Trunk(self.lab, "s2-c1", "trunk_uas.xml", work), Trunk(self.lab, "s2-c2", "trunk_uas.xml", work)
        uac_port = free_port()
        gw = self.gatewayd("s2-gatewayd", trunk("pbx", uac_port)
                           + trunk("c1", c1.port, monitor="{ interval_s = 1, down_after = 2, up_after = 2 }")
                           + trunk("c2", c2.port) + route("failover", ["c1", "c2"]), uac_port)
        # The probes reach c1 and are answered: the trunk is up before the first call.
        wait_until(lambda: c1.received("OPTIONS") >= 2, 15, "c1 answering the gateway's OPTIONS probes")
        d["c1 OPTIONS probes answered before the calls"] = c1.received("OPTIONS")
        d["gateway trunks before"] = gw.trunks_up()
        check(not gw.proc.grep(r"trunk down"), f"a trunk is down before the test: {gw.proc.grep(r'trunk down')}")
        # What c1 sends and receives, so that the calls in flight at its death can be looked at.
        pcap = self.out / "s2-c1.pcapng"
        if shutil.which("tshark"):
            cap = self.lab.start("s2-tshark", ["tshark", "-q", "-i", "lo", "-f", f"udp port {c1.port}", "-w", str(pcap)], self.out)
            wait_until(lambda: cap.grep(r"Capturing on") or cap.p.poll() is not None, 10, "tshark capturing")
        mark = len(gw.proc.lines)
        p, udir = uac(work, "s2-uac-batch1", gw, 300, 15, 100, timeout=120, background_lab=self.lab)
        time.sleep(5)
        c1_before_kill = c1.received("INVITE")
        c1.proc.signal(signal.SIGKILL)
        t_kill = time.monotonic()
        c1.proc.p.wait()
        d["c1 killed after s"] = 5
        d["c1 INVITEs answered (its last -trace_counts dump, up to 1 s before the kill)"] = c1_before_kill
        try:
            line = gw.proc.wait_for(r"trunk down", 20, mark)
        except Failed:
            raise Failed(f"gatewayd never logged `trunk down` within 20 s of c1's SIGKILL (status: {gw.status})")
        t_detect = time.monotonic()
        d["kill -> `trunk down` (s)"] = round(t_detect - t_kill, 2)
        d["gateway log"] = line[-200:]
        at_detect = csv_last(udir / "stat.csv")
        d["batch 1 at detection"] = {"created": at_detect.get("TotalCallCreated"), "successful": at_detect.get("SuccessfulCall(C)"),
                                     "failed": at_detect.get("FailedCall(C)")}
        try:
            p.p.wait(180)
        except subprocess.TimeoutExpired:
            p.stop()
        r1 = uac_result(udir, p.p.returncode)
        d["batch 1 (300 calls at 15 cps, c1 killed at 5 s)"] = uac_summary(r1)
        failed_at_detect = int(at_detect.get("FailedCall(C)") or 0)
        d["batch 1 calls failed by the detection"] = failed_at_detect
        d["batch 1 calls failed after the detection (in flight at the kill, or later)"] = r1["failed"] - failed_at_detect
        d["failovers logged by gatewayd"] = len(gw.proc.grep(r"call failed over to the next trunk", mark))
        started = {m.group(1) for l in gw.proc.grep(r"call started", mark) if (m := re.search(r"CallRef\((\d+)\)", l))}
        ended = {m.group(1) for l in gw.proc.grep(r"call ended|call failed\b|call rejected", mark) if (m := re.search(r"CallRef\((\d+)\)", l))}
        d["batch 1: gateway calls started but never ended (log)"] = sorted(started - ended, key=int)
        d["gateway trunks after the detection"] = gw.trunks_up()
        c2.settled()
        c2_mid = c2.received("INVITE")
        d["batch 1: INVITEs answered by c2"] = c2_mid
        d["batch 1: answered by c1 before it died (placed - failed - c2)"] = r1["created"] - r1["failed"] - c2_mid
        # Batch 2: every call from now on must succeed, all at c2.
        r2 = uac(work, "s2-uac-batch2", gw, 200, 20, 100, timeout=100)
        c2.settled()
        c2_end = c2.received("INVITE")
        d["batch 2 (200 calls after detection)"] = {**uac_summary(r2), "c2 INVITEs answered": c2_end - c2_mid}
        self.finish(d, gw)
        check(r2["successful"] == 200 and r2["failed"] == 0, f"batch 2: {r2['successful']} successful, {r2['failed']} failed of 200")
        check(c2_end - c2_mid == 200, f"batch 2: c2 answered {c2_end - c2_mid} INVITEs, expected 200")

    # ---- 3. 503 -> the next trunk

    def s3_503(self, d):
        work = self.scenario_dir(3)
        c1, c2 = Trunk(self.lab, "s3-c1", "trunk_503.xml", work), Trunk(self.lab, "s3-c2", "trunk_uas.xml", work)
        uac_port = free_port()
        gw = self.gatewayd("s3-gatewayd", trunk("pbx", uac_port) + trunk("c1", c1.port) + trunk("c2", c2.port)
                           + route("failover", ["c1", "c2"]), uac_port)
        mark = len(gw.proc.lines)
        r = uac(work, "s3-uac", gw, 50, 10, 20, timeout=60)
        c1.settled(), c2.settled()
        d["UAC"] = uac_summary(r)
        n1, acks, n2 = c1.received("INVITE"), c1.received("ACK"), c2.received("INVITE")
        d["c1: INVITEs refused 503, ACKs received"] = [n1, acks]
        d["c2: INVITEs answered 200"] = n2
        d["failovers logged by gatewayd"] = len(gw.proc.grep(r"call failed over to the next trunk", mark))
        self.finish(d, gw)
        check(r["successful"] == 50 and r["failed"] == 0, f"UAC: {r['successful']} successful, {r['failed']} failed of 50")
        check(n1 == 50, f"c1 saw {n1} INVITEs, expected 50")
        check(n2 == 50, f"c2 answered {n2} INVITEs, expected 50")
        check(acks == 50, f"c1 received {acks} ACKs for its 50 503s")

    # ---- 4. call admission control

    def s4_cac(self, d):
        work = self.scenario_dir(4)
        c1 = Trunk(self.lab, "s4-c1", "trunk_uas.xml", work)
        uac_port = free_port()
        gw = self.gatewayd("s4-gatewayd", trunk("pbx", uac_port) + trunk("c1", c1.port, max_calls=10)
                           + route("limited", ["c1"]) + "[admission]\nreject_status = 503\nretry_after_s = 5\n", uac_port)
        msgs = work / "s4-uac" / "messages.log"
        t0 = time.monotonic()
        r = uac(work, "s4-uac", gw, 11, 100, 11, scenario="uac_cac.xml", timeout=60,
                extra=("-d", "5000", "-trace_msg", "-message_file", str(msgs)))
        d["UAC (11 calls launched at 100 cps, each held 5 s)"] = {**uac_summary(r), "seconds": round(time.monotonic() - t0, 1)}
        cnt = r["counts"]
        col = lambda pat: next((int(v) for k, v in cnt.items() if re.fullmatch(pat, k)), 0)
        answered, refused = col(r"\d+_200_Recv"), col(r"\d+_503_Recv")
        d["answered 200"], d["refused 503"] = answered, refused
        c1.settled()
        d["c1 INVITEs answered"] = c1.received("INVITE")
        text = msgs.read_text(errors="replace") if msgs.exists() else ""
        blocks = [b for b in re.split(r"\n-{10,}[^\n]*\n", text) if re.search(r"(?m)^SIP/2\.0 503", b)]
        retry = [re.search(r"(?im)^Retry-After:\s*(.*)$", b) for b in blocks]
        d["the 503 as received"] = [l.strip() for l in blocks[0].splitlines() if l.strip()][:14] if blocks else None
        d["Retry-After"] = [m.group(1).strip() if m else None for m in retry]
        self.finish(d, gw)
        check(r["failed"] == 0, f"UAC: {r['failed']} calls failed (neither 200 nor 503)")
        check(answered == 10, f"{answered} calls answered, expected 10")
        check(refused == 1, f"{refused} calls refused 503, expected exactly 1")
        check(len(blocks) == 1, f"{len(blocks)} 503 responses in the UAC's message trace")
        check(all(retry), "the 503 carries no Retry-After")
        check(d["c1 INVITEs answered"] == 10, f"c1 answered {d['c1 INVITEs answered']} INVITEs, expected 10 (max_calls)")

    # ---- 5. registration offload

    def s5_offload(self, d):
        work = self.scenario_dir(5)
        kam_port, ctl = free_port(both=True), work / "kamailio_ctl"
        (work / "kamailio.cfg").write_text(KAMAILIO_CFG.format(port=kam_port, ctl=ctl, sipp=free_port()))
        kam = self.lab.start("s5-kamailio", ["kamailio", "-f", str(work / "kamailio.cfg"), "-DD", "-E", "-m", "64", "-M", "8"],
                             self.out)
        wait_until(lambda: ctl.exists(), 20, "Kamailio's control socket")
        interval, every, seconds, count = 120, 30, self.args.offload_seconds, 100
        gw = self.gatewayd("s5-gatewayd", trunk("pbx", kam_port)
                           + f'[registrar]\ntrunk = "pbx"\noffload_interval_s = {interval}\n')
        mark = len(kam.lines)

        def progress(n, t):
            print(f"  registration offload: {n} REGISTERs answered after {t} s; at Kamailio "
                  f"{len(kam.grep(r'REGISTERED sip:', mark))}; gateway: {gw.status}", flush=True)

        async def go():
            bs, _ = await browsers_run(gw.ws, count, every, seconds, 0.01, progress)
            await asyncio.sleep(1)  # the last forwarded REGISTER's log line
            at_kam = len(kam.grep(r"REGISTERED sip:", mark))
            status = gw.status
            stats = subprocess.run(["kamcmd", "-s", f"unix:{ctl}", "stats.get_statistics", "accepted_regs"],
                                   capture_output=True, text=True).stdout
            m = re.search(r"accepted_regs = (\d+)", stats)
            await browsers_close(bs)
            return bs, at_kam, status, int(m.group(1)) if m else stats.strip()

        t0 = time.monotonic()
        bs, at_kam, status, stats = asyncio.run(go())
        per = 1 + seconds // every
        sent = sum(len(b.results) for b in bs)
        codes = {}
        for b in bs:
            for x in b.results:
                codes[str(x["status"])] = codes.get(str(x["status"]), 0) + 1
        limit = count * (1 + seconds // interval)
        loc = subprocess.run(["kamcmd", "-s", f"unix:{ctl}", "ul.lookup", "location", "user1@127.0.0.1"],
                             capture_output=True, text=True).stdout
        offloaded = re.search(r"offloaded refreshes: (\d+)", status or "")
        ms = sorted(x["ms"] for b in bs for x in b.results)
        d["browsers, REGISTER every s, for s"] = [count, every, seconds]
        d["REGISTERs sent by the browsers"] = sent
        d["answers"] = codes
        d["answer time ms (median, max)"] = [ms[len(ms) // 2], ms[-1]] if ms else None
        d["REGISTERs accepted at Kamailio (REGISTERED log lines)"] = at_kam
        d["Kamailio registrar:accepted_regs"] = stats
        d[f"configured rate: {count} x (1 + floor({seconds}/{interval}))"] = limit
        d["ratio at Kamailio / sent"] = round(at_kam / sent, 3) if sent else None
        d["gateway STATUS before the browsers left"] = status
        d["gateway offloaded refreshes (expected about sent - at Kamailio)"] = int(offloaded.group(1)) if offloaded else None
        d["Kamailio location of user1"] = [l.strip() for l in loc.splitlines() if "Address" in l or "Expires" in l][:4]
        d["seconds"] = round(time.monotonic() - t0)
        self.finish(d, gw)
        print(f"  registration offload: sent {sent}, at Kamailio {at_kam} (limit {limit}), ratio {d['ratio at Kamailio / sent']}", flush=True)
        check(sent == count * per, f"{sent} REGISTERs sent, expected {count * per}")
        check(codes == {"200": sent}, f"not every REGISTER was answered 200: {codes}")
        check(at_kam >= count, f"only {at_kam} REGISTERs reached Kamailio: each browser's first must")
        check(at_kam <= limit, f"{at_kam} REGISTERs reached Kamailio, more than the configured rate {limit}")

    # ---- running, report

    def run(self):
        scenarios = [
            (1, "weighted split 70/30 over 1000 calls (SIPp UAC -> gatewayd -> two SIPp UAS trunks)", self.s1_weighted),
            (2, "a monitored trunk killed mid-test: OPTIONS marks it down, calls fail over", self.s2_trunk_down),
            (3, "a trunk answering 503: the call goes to the route's next trunk", self.s3_503),
            (4, "call admission control: max_calls = 10, the 11th concurrent call is refused 503 + Retry-After", self.s4_cac),
            (5, "registration offload: 100 WebSocket browsers refreshing every 30 s, Kamailio sees at most the configured rate", self.s5_offload),
        ]
        only = {int(x) for x in self.args.only.split(",")} if self.args.only else None
        interop.run_scenarios(scenarios, only, self.results, self.after_scenario)

    def after_scenario(self):
        if self.gw:
            self.gw.close(self.lab)
            self.gw = None
        self.lab.stop_all()

    def report(self):
        return interop.write_report(self.out, "RTC Edge routing report", self.results)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gatewayd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--calls", type=int, default=1000, help="scenario 1's calls")
    ap.add_argument("--offload-seconds", type=int, default=300, help="scenario 5's duration")
    args = ap.parse_args()
    suite = Suite(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = False
    try:
        suite.run()
    finally:
        if suite.gw:
            suite.gw.close(suite.lab)
        suite.lab.stop_all()
        ok = suite.report()
    print(f"\nreport: {suite.out / 'report.md'}")
    print(f"routing: {sum(r['verdict'] == 'pass' for r in suite.results)} passed, "
          f"{sum(r['verdict'] != 'pass' for r in suite.results)} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
