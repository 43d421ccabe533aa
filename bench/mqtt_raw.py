#!/usr/bin/python3
"""Raw-socket MQTT load for bench/broker.sh, cases paho cannot drive fast enough.

  pubs  --port P --pubs 1000 -n 20   1,000 concurrent QoS 0 publishers, one subscriber:
        deliveries/s = messages received / (last receive - start)
  idle  --port P --clients 10000     connect idle clients, print once all have CONNACK,
        then hold them until stdin closes
Packets are pre-encoded; the subscriber counts fixed-size PUBLISH packets by bytes.
"""
import argparse, selectors, socket, sys, time


def connect_pkt(cid, keepalive=600):
    cid = cid.encode()
    var = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big")
    pl = len(cid).to_bytes(2, "big") + cid
    body = var + pl
    return bytes([0x10, len(body)]) + body


def dial(port, cid):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(connect_pkt(cid))
    got = b""
    while len(got) < 4:
        got += s.recv(4 - len(got))
    assert got[:2] == b"\x20\x02" and got[3] == 0, got
    return s


def pubs(a):
    topic = b"bench/p"
    payload = b"x" * a.size
    body = len(topic).to_bytes(2, "big") + topic + payload
    pkt = bytes([0x30, len(body)]) + body
    sub = dial(a.port, "sub-load")
    f = b"\x00\x07bench/p\x00"
    sub.sendall(bytes([0x82, 2 + len(f)]) + b"\x00\x01" + f)
    need = 5
    got = b""
    while len(got) < need:
        got += sub.recv(need - len(got))
    ps = [dial(a.port, "pub-%d" % i) for i in range(a.pubs)]
    for p in ps:
        p.setblocking(False)
    sub.setblocking(False)
    expect = a.pubs * a.n * len(pkt)
    sel = selectors.DefaultSelector()
    sel.register(sub, selectors.EVENT_READ)
    out = {p: pkt * a.n for p in ps}
    for p in ps:
        sel.register(p, selectors.EVENT_WRITE)
    t0 = time.monotonic()
    rcv, t_last = 0, t0
    deadline = t0 + a.timeout
    while rcv < expect and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1.0):
            s = key.fileobj
            if s is sub:
                try:
                    d = sub.recv(1 << 20)
                except BlockingIOError:
                    continue
                rcv += len(d)
                t_last = time.monotonic()
            else:
                try:
                    k = s.send(out[s])
                except BlockingIOError:
                    continue
                out[s] = out[s][k:]
                if not out[s]:
                    sel.unregister(s)
    n = rcv // len(pkt)
    el = max(t_last - t0, 1e-9)
    print("mqtt pubs=%d n=%d deliveries_s=%.0f delivered=%d expected=%d lost=%d elapsed_s=%.2f"
          % (a.pubs, a.n, n / el, n, a.pubs * a.n, a.pubs * a.n - n, el))


def idle(a):
    socks = []
    for i in range(a.clients):
        socks.append(dial(a.port, "idle-%d" % i))
    print("connected %d" % len(socks), flush=True)
    sys.stdin.read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["pubs", "idle"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pubs", type=int, default=1000)
    p.add_argument("-n", type=int, default=20)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--clients", type=int, default=10000)
    p.add_argument("--timeout", type=float, default=120.0)
    a = p.parse_args()
    pubs(a) if a.case == "pubs" else idle(a)


if __name__ == "__main__":
    main()
