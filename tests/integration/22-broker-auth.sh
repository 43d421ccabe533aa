#!/bin/bash
# Authentication and authorisation: a password file made with `coro
# passwd` (right password accepted, wrong one refused with CONNACK 5,
# anonymous refused with allow_anonymous = no), an ACL file denying a
# topic (and SUBACK 0x80 for a filter it lets the client read nothing
# through), an MQTT 3.1 client, and a TLS listener checked with
# mosquitto_pub --cafile whose certificate a SIGHUP re-reads while a TLS
# client stays connected.
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

# MQTT 3.1 ("MQIsdp", level 3) is accepted.
mosquitto_pub -V mqttv31 -p "$P" -u alice -P secret -t open/31 -m old || fail "MQTT 3.1 refused"

# A filter through which the ACL grants alice nothing: SUBACK 0x80.
timeout 5 mosquitto_sub -p "$P" -u alice -P secret -t 'private/#' -C 1 -W 2 > "$T/den" 2>&1
grep -qi 'denied' "$T/den" || fail "SUBSCRIBE to private/# not refused: $(cat "$T/den")"

# SIGHUP re-reads the certificate files in place; a TLS client stays.
subject() {
    openssl s_client -connect 127.0.0.1:"$PT" -CAfile "$T/ca.pem" </dev/null 2>/dev/null |
        openssl x509 -noout -subject
}
case "$(subject)" in *127.0.0.1*) ;; *) fail "TLS subject before reload: $(subject)" ;; esac
timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PT" --cafile "$T/ca.pem" -u alice -P secret \
    -t 'open/#' -C 1 -v > "$T/tls2" &
SP=$!
wait_for "$T/log" 'client "[^"]*".*connected.*'
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$T/srv2.key" \
    -out "$T/srv2.csr" 2>/dev/null || fail "CSR 2"
openssl x509 -req -in "$T/srv2.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -days 2 -extfile "$T/ext" -out "$T/srv2.pem" 2>/dev/null || fail "server cert 2"
cp "$T/srv2.key" "$T/srv.key" && cp "$T/srv2.pem" "$T/srv.pem"
kill -HUP "$BPID"
wait_for "$T/log" 'reloaded'
case "$(subject)" in *localhost*) ;; *) fail "TLS subject after reload: $(subject)" ;; esac
mosquitto_pub -h 127.0.0.1 -p "$PT" --cafile "$T/ca.pem" -u alice -P secret -t open/after -m kept ||
    fail "TLS publish after reload"
wait $SP || fail "TLS subscriber across the reload"
expect_eq "TLS client kept across reload" "$(cat "$T/tls2")" "open/after kept"
pass
