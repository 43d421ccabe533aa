#!/bin/bash
# Authentication and authorisation: a password file made with `coro
# passwd` (right password accepted, wrong one refused with CONNACK 5,
# anonymous refused with allow_anonymous = no), an ACL file denying a
# topic, and a TLS listener checked with mosquitto_pub --cafile.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
need openssl
[ -x "$CORO" ] || fail "$CORO not built"
P=$(free_port)
PT=$(free_port)
"$CORO" passwd -b -c -I 1000 "$T/passwd" alice secret 2>/dev/null || fail "coro passwd failed"
cat > "$T/acl" <<'ACL'
user alice
topic readwrite open/#
topic read secret/#
ACL
# A CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
    -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null || fail "CA"
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$T/srv.key" \
    -out "$T/srv.csr" 2>/dev/null || fail "CSR"
printf 'subjectAltName=IP:127.0.0.1\n' > "$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -days 2 -extfile "$T/ext" -out "$T/srv.pem" 2>/dev/null || fail "server cert"

broker_conf "$P" "[auth]
allow_anonymous = no
password_file = $T/passwd
acl_file = $T/acl
[listener.tls]
listen = 127.0.0.1:$PT
tls_cert = $T/srv.pem
tls_key = $T/srv.key"
start_broker

mosquitto_pub -p "$P" -u alice -P secret -t open/1 -m hi || fail "right password refused"
mosquitto_pub -p "$P" -u alice -P wrong -t open/1 -m hi 2>"$T/err"
rc=$?
[ $rc -ne 0 ] || fail "wrong password accepted"
grep -qiE 'not authori[sz]ed|bad user name|password' "$T/err" || fail "wrong password: $(cat "$T/err")"
grep -q 'connection refused: bad user name or password' "$T/log" || fail "refusal not logged"
mosquitto_pub -p "$P" -t open/1 -m anon 2>/dev/null && fail "anonymous accepted"

# ACL: alice may read secret/# but not write it.
timeout 5 mosquitto_sub -p "$P" -u alice -P secret -t 'secret/#' -t 'open/#' -C 1 -v > "$T/sub" &
SP=$!
wait_for "$T/log" 'client "[^"]*".*connected.*' 
sleep 0.5
mosquitto_pub -p "$P" -u alice -P secret -t secret/x -m leak || fail "denied publish errored"
mosquitto_pub -p "$P" -u alice -P secret -t open/x -m fine || fail "allowed publish"
wait $SP || fail "subscriber got nothing"
expect_eq "ACL denies secret/x, allows open/x" "$(cat "$T/sub")" "open/x fine"
grep -q 'publish to "secret/x" denied' "$T/log" || fail "denied publish not logged"

# TLS with the CA file.
timeout 5 mosquitto_sub -h 127.0.0.1 -p "$PT" --cafile "$T/ca.pem" -u alice -P secret -t 'open/#' -C 1 -v \
    > "$T/tls" &
SP=$!
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p "$PT" --cafile "$T/ca.pem" -u alice -P secret -t open/tls -m sealed ||
    fail "TLS publish"
wait $SP || fail "TLS subscriber"
expect_eq "TLS delivery" "$(cat "$T/tls")" "open/tls sealed"
mosquitto_pub -h 127.0.0.1 -p "$PT" -u alice -P secret -t open/tls -m plain 2>/dev/null &&
    fail "plain MQTT accepted on the TLS listener"
pass
