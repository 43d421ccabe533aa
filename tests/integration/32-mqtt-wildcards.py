#!/usr/bin/python3
"""MQTT 3.1.1 topic filters (section 4.7): '+' matches one level (empty
ones too), '#' matches the parent and every level below, '$' topics are
not matched by a leading wildcard, topics are case-sensitive UTF-8, an
invalid filter is refused, and overlapping subscriptions deliver at least
once at the highest matching QoS. BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import SUBACK, Closed, check, check_spec, main, subscribe_packet


def matching(b, name, flt, yes, no):
    """Subscribe flt, publish every topic of yes and no (QoS 1), and check
    exactly the yes ones arrive."""
    sub = b.client("t32-sub-" + name)
    check(sub.subscribe([(flt, 1)]) == [1], "SUBACK for %r" % flt)
    pub = b.client("t32-pub-" + name)
    for t in yes + no:
        pub.publish(t, t.encode(), qos=1)
    got = sorted(p.topic for p in sub.publishes(1.0) if p.topic in yes + no)
    check(got == sorted(yes), "filter %r received %r, want %r" % (flt, got, sorted(yes)))


def plus(b):
    matching(b, "plus", "t32/p/+/x", ["t32/p/a/x", "t32/p//x", "t32/p/\u00e9\u00e8/x"],
             ["t32/p/a/b/x", "t32/p/x", "t32/p/a/x/y", "t32/p/a/X"])


def plus_last(b):
    matching(b, "plus-last", "t32/pl/+", ["t32/pl/a", "t32/pl/"],
             ["t32/pl", "t32/pl/a/b"])


def hash_(b):
    matching(b, "hash", "t32/h/#", ["t32/h", "t32/h/a", "t32/h/a/b/c", "t32/h/"],
             ["t32/hx", "t32/x/h"])


def plus_hash(b):
    matching(b, "plushash", "t32/ph/+/#", ["t32/ph/a", "t32/ph/a/b", "t32/ph/a/b/c"],
             ["t32/ph", "t32/pz/a"])


def exact(b):
    matching(b, "exact", "t32/Case/\u00fc \u00e9", ["t32/Case/\u00fc \u00e9"],
             ["t32/case/\u00fc \u00e9", "t32/Case/u e", "t32/Case/\u00fc \u00e9/"])


def leading_slash(b):
    matching(b, "slash", "/t32/+", ["/t32/a"], ["t32/a", "//t32/a"])


def dollar(b):
    """$SYS statistics (sys_interval 1 s) reach '$SYS/#' but never '#',
    '+/broker/#' or '+/#' [MQTT-4.7.2-1]."""
    wild = b.client("t32-dollar-wild")
    check(wild.subscribe([("#", 0), ("+/broker/#", 0), ("+/#", 0)]) == [0, 0, 0],
          "SUBACK for '#', '+/broker/#', '+/#'")
    sys_ = b.client("t32-dollar-sys")
    check(sys_.subscribe([("$SYS/#", 0)]) == [0], "SUBACK for '$SYS/#'")
    deadline = time.monotonic() + 4
    sys_topics, leaked = [], []
    while time.monotonic() < deadline and not sys_topics:
        sys_topics += [p.topic for p in sys_.publishes(0.5)]
        leaked += [p.topic for p in wild.publishes(0.1) if p.topic.startswith("$")]
    check(sys_topics, "no $SYS message within 4 s with sys_interval 1 s")
    check(all(t.startswith("$SYS/") for t in sys_topics),
          "'$SYS/#' delivered %r" % sys_topics[:5])
    leaked += [p.topic for p in wild.publishes(1.5) if p.topic.startswith("$")]
    check(not leaked, "a leading wildcard matched '$' topics: %r" % leaked[:5])


def overlapping(b):
    """Section 3.3.5: at least one copy at the maximum QoS of the matching
    subscriptions [MQTT-3.3.5-1]; further copies, one per other matching
    subscription, are allowed. mosquitto 2.0.11 sends one copy at the QoS of
    whichever filter it matched first (upstream issue #3319)."""
    sub = b.client("t32-overlap")
    filters = [("t32/o/+", 0), ("t32/o/#", 1), ("t32/+/a", 0)]
    check(sub.subscribe(filters) == [0, 1, 0], "SUBACK for overlapping filters")
    pub = b.client("t32-overlap-pub")
    pub.publish("t32/o/a", b"overlap", qos=2)
    got = [p for p in sub.publishes(1.0) if p.topic == "t32/o/a"]
    check(1 <= len(got) <= len(filters),
          "overlapping subscriptions delivered %d copies, want 1..%d"
          % (len(got), len(filters)))
    check_spec(max(p.qos for p in got) == 1,
               "no copy at the highest matching QoS 1 [MQTT-3.3.5-1]: %r" % got,
               "one copy at the QoS of the first filter matched, "
               "eclipse-mosquitto/mosquitto#3319")
    check(all(p.payload == b"overlap" for p in got), "payloads %r" % got)
    print("     (%d copies for %d matching subscriptions)" % (len(got), len(filters)))


def invalid_filters(b):
    """A filter breaking the wildcard rules: SUBACK 0x80 for it or the
    connection closed (malformed SUBSCRIBE); never a subscription."""
    for flt in ("t32/a#", "t32/#/a", "t32/+a", "t32/a+/b", ""):
        c = b.client("t32-invalid")
        c.send(subscribe_packet(3, [(flt, 0)]))
        try:
            p = c.read(5)
        except Closed:
            continue
        check(p.type == SUBACK and p.codes == [0x80],
              "invalid filter %r: got %r, want SUBACK 0x80 or close" % (flt, p))
        c.disconnect()


if __name__ == "__main__":
    main([("'+' matches exactly one level", plus),
          ("'+' as the last level", plus_last),
          ("'#' matches the parent and all below", hash_),
          ("'+/#' combined", plus_hash),
          ("case-sensitive UTF-8 levels", exact),
          ("leading '/' is an empty level", leading_slash),
          ("'$SYS' not matched by leading wildcards", dollar),
          ("overlapping subscriptions", overlapping),
          ("invalid filters refused", invalid_filters)])
