#!/bin/bash
# SIGHUP: a listener added while a subscriber stays connected (and keeps
# getting messages published through the new listener), then a config
# error on reload leaving the old config (and both listeners) running.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
P=$(free_port)
P2=$(free_port)
broker_conf "$P"
start_broker

timeout 15 mosquitto_sub -p "$P" -t 'h/#' -C 2 -v > "$T/sub" &
SP=$!
sleep 0.3
mosquitto_pub -p "$P" -t h/1 -m before || fail "pub before reload"
cat >> "$T/broker.ini" <<INI
[listener.second]
listen = 127.0.0.1:$P2
INI
kill -HUP $BPID
wait_for "$T/log" "listener \"second\": listening on 127.0.0.1:$P2"
mosquitto_pub -p "$P2" -t h/2 -m after || fail "pub through the new listener"
wait $SP || fail "subscriber lost across the reload: $(cat "$T/sub")"
expect_eq "messages across reload" "$(cat "$T/sub" | tr '\n' ' ')" "h/1 before h/2 after "

echo "bogus_key = 1" >> "$T/broker.ini"
kill -HUP $BPID
wait_for "$T/log" 'bogus_key'
sleep 0.2
kill -0 $BPID || fail "broker died on a bad reload"
mosquitto_pub -p "$P" -t h/3 -m x || fail "old listener gone after a bad reload"
mosquitto_pub -p "$P2" -t h/3 -m x || fail "second listener gone after a bad reload"
kill $BPID
wait $BPID || fail "SIGTERM exit status"
pass
