#!/usr/bin/env python3
"""Send SIP OPTIONS over UDP to HOST:PORT, retransmitting like a UAC, until a final response arrives.

Usage: sip_options_probe.py HOST PORT [TIMEOUT_SECONDS]
Exit 0 and print the status line on 200 OK; exit 1 on any other answer or on timeout.
"""
import socket
import sys
import time
import uuid

host, port = sys.argv[1], int(sys.argv[2])
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(0.2)
local = "%s:%d" % sock.getsockname()
call_id = uuid.uuid4().hex
request = (
    f"OPTIONS sip:gateway@{host}:{port} SIP/2.0\r\n"
    f"Via: SIP/2.0/UDP {local};branch=z9hG4bK{call_id[:12]};rport\r\n"
    "Max-Forwards: 70\r\n"
    f"From: <sip:ci@{host}>;tag={call_id[:8]}\r\n"
    f"To: <sip:gateway@{host}>\r\n"
    f"Call-ID: {call_id}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
).encode()

deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    sock.sendto(request, (host, port))
    try:
        data, _ = sock.recvfrom(65535)
    except (socket.timeout, ConnectionRefusedError):
        continue
    status = data.split(b"\r\n", 1)[0].decode(errors="replace")
    print(f"probe {host}:{port}: {status}")
    sys.exit(0 if status.startswith("SIP/2.0 200 ") and f"Call-ID: {call_id}".encode() in data else 1)
print(f"probe {host}:{port}: no response within {timeout:.0f} s", file=sys.stderr)
sys.exit(1)
