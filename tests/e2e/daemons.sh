# tests/e2e/daemons.sh - per-daemon checks of tests/e2e/run.sh, sourced by it:
# check_NAME STEP with STEP one of
#   use             a real client through the installed configuration
#   reload          add a listener, systemctl reload, the new listener works
#                   and a client connected before the reload still receives
#                   (the broker also: a root:coro-broker 0640 password file
#                   rewritten by coro passwd, then reloaded)
#   before-restart  leave state that must survive a restart
#   after-restart   check that state
# Helpers from run.sh: ct CMD (shell command in the container), wait_ct,
# fail, say, $ini (the installed config file). A new daemon adds check_NAME.

# mqtt_roundtrip PORT TOPIC: a subscriber on PORT receives one message
# published to TOPIC (published until it arrives, at most 5 s).
mqtt_roundtrip() {
    ct "rm -f /root/rt.out; mosquitto_sub -h 127.0.0.1 -p $1 -t '$2' -C 1 -W 10 >/root/rt.out 2>&1 &"
    for _ in $(seq 25); do
        ct "mosquitto_pub -h 127.0.0.1 -p $1 -t '$2' -m e2e-$1" >/dev/null 2>&1 || true
        [ "$(ct "cat /root/rt.out")" = "e2e-$1" ] && return 0
        sleep 0.2
    done
    fail "coro-broker: no message through port $1: $(ct "cat /root/rt.out")"
}

# check_broker_passwd: a password file the admin made root:coro-broker
# 0640 stays readable to the service after `coro passwd` rewrites it and
# the unit reloads (the ngIRCd/tinyproxy bug: fine at start, broken on
# reload). Leaves the config and /etc/coro as they were.
check_broker_passwd() {
    local pw=/etc/coro/coro-broker.passwd pub="mosquitto_pub -h 127.0.0.1 -p 1883 -t e2e/auth -m x"
    ct "coro passwd -b -c $pw alice alice-pw && chgrp coro-broker $pw && chmod 0640 $pw" ||
        fail "coro passwd -c"
    ct "sed -i 's|^password_file =.*|password_file = $pw|' $ini &&
        grep -qx 'password_file = $pw' $ini" ||
        fail "coro-broker: no 'password_file =' key in the shipped $ini"
    ct "systemctl reload coro-broker" || fail "coro-broker: reload with a password file"
    ct "coro passwd -b $pw bob bob-pw" || fail "coro passwd adding bob"
    [ "$(ct "stat -c %U:%G:%a $pw")" = root:coro-broker:640 ] ||
        fail "coro passwd left $pw as $(ct "stat -c %U:%G:%a $pw"), not root:coro-broker:640"
    ct "systemctl reload coro-broker" || fail "coro-broker: reload after coro passwd"
    ct "$pub -u bob -P bob-pw" || fail "coro-broker: bob refused after coro passwd and reload"
    ct "$pub -u bob -P wrong" 2>/dev/null && fail "coro-broker: a wrong password was accepted"
    ct "sed -i 's|^password_file =.*|password_file =|' $ini &&
        systemctl reload coro-broker && rm $pw" ||
        fail "coro-broker: restoring password_file"
    say "coro-broker: coro passwd kept $pw root:coro-broker 0640, reload read it:" \
        "bob in, a wrong password out"
}

check_broker() {
    case $1 in
    use)
        mqtt_roundtrip 1883 e2e/hello
        say "coro-broker: mosquitto_pub -> mosquitto_sub through 127.0.0.1:1883"
        ;;
    reload)
        # A subscriber connected across the reload, proved live first.
        ct "mosquitto_sub -h 127.0.0.1 -p 1883 -t e2e/keep -q 1 >/root/keep.out 2>&1 & echo \$! >/root/keep.pid"
        for _ in $(seq 25); do
            ct "mosquitto_pub -h 127.0.0.1 -p 1883 -t e2e/keep -q 1 -m before" >/dev/null 2>&1 || true
            ct "grep -qx before /root/keep.out" && break
            sleep 0.2
        done
        ct "grep -qx before /root/keep.out" || fail "coro-broker: kept subscriber not receiving"
        ct "printf '\n[listener.e2e]\nlisten = 127.0.0.1:1884\nallow_anonymous = yes\n' >>$ini"
        ct "systemctl reload coro-broker" || fail "coro-broker: reload adding a listener failed"
        wait_ct "mosquitto_pub -h 127.0.0.1 -p 1884 -t e2e/keep -q 1 -m after" ||
            fail "coro-broker: new listener 1884 not serving after reload"
        for _ in $(seq 25); do ct "grep -qx after /root/keep.out" && break; sleep 0.2; done
        ct "grep -qx after /root/keep.out" ||
            fail "coro-broker: subscriber connected before the reload got nothing after it"
        ct "kill -0 \$(cat /root/keep.pid)" || fail "coro-broker: kept subscriber was dropped"
        ct "kill \$(cat /root/keep.pid)"
        say "coro-broker: reload added 127.0.0.1:1884; a subscriber on 1883 stayed connected and received"
        check_broker_passwd
        ;;
    before-restart)
        ct "sed -i 's/^persistence = .*/persistence = yes/' $ini && grep -q '^persistence = yes' $ini" ||
            fail "coro-broker: no 'persistence =' key in the shipped $ini"
        ct "systemctl restart coro-broker" || fail "coro-broker: restart with persistence = yes"
        wait_ct "mosquitto_pub -h 127.0.0.1 -p 1883 -t e2e/retained -q 1 -r -m survives" ||
            fail "coro-broker: retained publish"
        ;;
    after-restart)
        out=$(ct "mosquitto_sub -h 127.0.0.1 -p 1883 -t e2e/retained -C 1 -W 5") ||
            fail "coro-broker: no retained message after restart"
        [ "$out" = survives ] || fail "coro-broker: retained message after restart: '$out'"
        ct "test -n \"\$(ls -A /var/lib/coro-broker)\"" || fail "coro-broker: nothing in /var/lib/coro-broker"
        say "coro-broker: a retained QoS 1 message survived the restart (state in /var/lib/coro-broker)"
        ;;
    esac
}
