#!/usr/bin/python3
"""Authentication and ACLs as mosquitto users know them: a password file
(made with `coro passwd` or mosquitto_passwd), allow_anonymous off, an
acl_file in mosquitto's syntax (user, topic read|write|readwrite, pattern
with %u and %c). A wrong password gets CONNACK 4 or 5 (mosquitto 2.0 sends
5; both are MQTT 3.1.1 refusals); a denied publish is dropped silently and
still acknowledged (QoS 1/2), as mosquitto does; a denied subscribe gets
SUBACK 0x80 or delivers nothing. BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import CONNACK, check, connect_packet, main

USERS = {"alice": "alice pass", "bob": "bob-pass", "admin": "s3cret!"}
ACL = """# alice: per-topic rules; admin: everything under t37/
user alice
topic readwrite t37/public/#
topic read t37/ro/#
topic write t37/wo/#

user admin
topic readwrite t37/#

# every user: their own subtree and their client id's
pattern readwrite t37/users/%u/#
pattern readwrite t37/clients/%c/#
"""


def login(b, user, cid=None):
    return b.client(cid or "t37-" + user, username=user, password=USERS[user])


def refused(b, what, **kw):
    c = b.conn()
    c.send(connect_packet("t37-refused", **kw))
    ack = c.expect(CONNACK, what=what)
    check(ack.rc in (4, 5), "%s: CONNACK rc %d, want 4 (bad user name or "
          "password) or 5 (not authorized)" % (what, ack.rc))
    check(c.closed_within(5), "%s: connection open after CONNACK rc %d" % (what, ack.rc))
    print("     (%s: rc %d)" % (what, ack.rc))


def admin_watch(b, name):
    w = login(b, "admin", "t37-watch-" + name)
    check(w.subscribe([("t37/#", 2)]) == [2], "admin SUBACK for t37/#")
    return w


def delivered(w, topic):
    return [p.payload for p in w.publishes(1.0) if p.topic == topic]


def passwords(b):
    for u in USERS:
        login(b, u).disconnect()
    refused(b, "wrong password", username="alice", password="alice pas")
    refused(b, "unknown user", username="mallory", password="alice pass")
    refused(b, "user name without password", username="alice")


def anonymous(b):
    refused(b, "anonymous with allow_anonymous off")


def publish_denied(b):
    w = admin_watch(b, "pub")
    a = login(b, "alice")
    a.publish("t37/secret/q0", b"denied", qos=0)
    a.publish("t37/secret/q1", b"denied", qos=1)   # PUBACK all the same
    a.publish("t37/secret/q2", b"denied", qos=2)   # PUBREC/PUBCOMP as well
    a.publish("t37/public/ok", b"allowed", qos=1)
    got = [(p.topic, p.payload) for p in w.publishes(1.0)]
    check(got == [("t37/public/ok", b"allowed")], "admin saw %r: denied "
          "publishes must not be delivered, the allowed one must" % got)
    a.ping()   # the denied publishes did not cost alice her connection


def denied_not_retained(b):
    a = login(b, "alice")
    a.publish("t37/secret/ret", b"denied", qos=1, retain=True)
    a.ping()
    w = admin_watch(b, "ret")
    check(delivered(w, "t37/secret/ret") == [], "a denied retained publish "
          "was stored and sent to a late subscriber")


def subscribe_denied(b):
    a = login(b, "alice")
    codes = a.subscribe([("t37/secret/#", 1), ("t37/public/#", 1)])
    check(codes[1] == 1, "allowed subscription: SUBACK %r" % codes)
    check(codes[0] in (0x80, 1), "denied subscription: SUBACK %r" % codes)
    adm = login(b, "admin", "t37-admin-pub")
    adm.publish("t37/secret/x", b"hidden", qos=1)
    adm.publish("t37/public/x", b"open", qos=1)
    got = [(p.topic, p.payload) for p in a.publishes(1.0)]
    check(got == [("t37/public/x", b"open")], "alice received %r; the denied "
          "subscription must deliver nothing (SUBACK %r)" % (got, codes))
    print("     (denied SUBSCRIBE answered with code 0x%02x)" % codes[0])


def read_only(b):
    w = admin_watch(b, "ro")
    a = login(b, "alice")
    check(a.subscribe([("t37/ro/#", 1)]) == [1], "read-only subscribe granted")
    login(b, "admin", "t37-admin-ro").publish("t37/ro/news", b"read me", qos=1)
    got = [p.payload for p in a.publishes(1.0)]
    check(got == [b"read me"], "read-only topic: alice got %r" % got)
    w.publishes(0.2)
    a.publish("t37/ro/news", b"write attempt", qos=1)
    check(b"write attempt" not in delivered(w, "t37/ro/news"),
          "alice published to a read-only topic")


def write_only(b):
    w = admin_watch(b, "wo")
    a = login(b, "alice")
    a.publish("t37/wo/in", b"drop box", qos=1)
    check(delivered(w, "t37/wo/in") == [b"drop box"], "write-only publish "
          "not delivered")
    codes = a.subscribe([("t37/wo/#", 1)])
    check(codes[0] in (0x80, 1), "write-only subscribe: SUBACK %r" % codes)
    login(b, "admin", "t37-admin-wo").publish("t37/wo/in", b"not for alice", qos=1)
    check(a.publishes(1.0) == [], "alice read a write-only topic")


def pattern_user(b):
    w = admin_watch(b, "pu")
    bob = login(b, "bob")
    check(bob.subscribe([("t37/users/bob/#", 1)]) == [1], "%u subscribe")
    bob.publish("t37/users/bob/a", b"mine", qos=1)
    bob.publish("t37/users/alice/a", b"not mine", qos=1)
    got = [(p.topic, p.payload) for p in w.publishes(1.0)]
    check(got == [("t37/users/bob/a", b"mine")], "pattern %%u: admin saw %r" % got)
    check([p.payload for p in bob.publishes(0.5)] == [b"mine"], "bob's own subtree")


def pattern_client(b):
    w = admin_watch(b, "pc")
    bob = login(b, "bob", "bobdev")
    bob.publish("t37/clients/bobdev/x", b"by client id", qos=1)
    bob.publish("t37/clients/other/x", b"other id", qos=1)
    got = [(p.topic, p.payload) for p in w.publishes(1.0)]
    check(got == [("t37/clients/bobdev/x", b"by client id")],
          "pattern %%c: admin saw %r" % got)


if __name__ == "__main__":
    main([("passwords: right accepted, wrong refused", passwords),
          ("anonymous refused", anonymous),
          ("denied publish not delivered, still acknowledged", publish_denied),
          ("denied subscribe: 0x80 or nothing delivered", subscribe_denied),
          ("topic read: subscribe yes, publish no", read_only),
          ("topic write: publish yes, read no", write_only),
          ("pattern %u", pattern_user),
          ("pattern %c", pattern_client),
          # last: if the broker wrongly keeps it, it cannot leak into the others
          ("denied retained publish not stored", denied_not_retained)],
         broker_opts={"users": USERS, "acl": ACL, "allow_anonymous": False})
