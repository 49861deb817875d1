# shellcheck shell=bash
# Interop section "relay": outbound delivery of `mailsec serve` through its
# durable queue, end to end against real peers. Sourced by scripts/interop.sh
# (see there for check/why/skip/newid/wait_maildir/private_postfix).
#
# Processes of this section, all on 127.0.0.1:
#   R   the relaying `mailsec serve` (domain relay.test, user alice): MX 13025
#       (STARTTLS may), submission 13587, SMTPS 13465, POP3 13110, POP3S
#       13995, metrics 13900; data in $W/relay/r/data. backoff 1s..2s,
#       workers 4, relay.resolver = the DNS stub, relay.ca_file = the peers' CA.
#   D   a destination `mailsec serve` (domain dest.test, user bob): MX 13225
#       (STARTTLS may, its own generated CA, so "tls" but not "verified").
#   R2  a second relaying serve for the smarthost check (submission 13687),
#       smarthost = localhost:10587 (the shared Postfix, AUTH as alice).
#   P   a private Postfix: 13125 plain (no STARTTLS), 13126 STARTTLS offered
#       with the peers' certificate (names localhost, 127.0.0.1, ::1);
#       accepts any local part of plain.test, plainverify.test, ver.test and
#       badname.test into Maildirs under $W/relay/pf-mail/<domain>/.
#   S   a scripted SMTP sink (python3) on 13325 for slow.test: it waits
#       $RL_DIR/sink/delay seconds after the end of data, stores the message,
#       then answers 250 -- deliveries stay in flight long enough to kill;
#       while $RL_DIR/sink/hold exists new sessions wait for the greeting.
#   DNS a stub resolver (python3, UDP and TCP) on 13053: the relay's resolver
#       does not read /etc/hosts, so next hops by name need it. localhost and
#       wrongname.test are A 127.0.0.1; everything else NXDOMAIN.
# The shared peers (Postfix 10026, 10587) are used as they are: example.test
# mail goes to 10026 (STARTTLS offered), the smarthost is 10587. The shared
# Postfix accepts example.test only and routes are keyed by recipient
# domain, hence P for the other TLS cases.
#
# Checks:
#   relay-starttls          bob@example.test via 10026: in bob's Maildir, Postfix's
#                           Received says "using TLSv1.x"; R logs "delivery attempt"
#                           result=delivered tls_policy=may tls_version="TLS 1.x"
#   relay-plain-may         no STARTTLS offered, may: delivered in plain, logged with
#                           tls_policy=may and an empty tls_version
#   relay-verify-no-starttls  verify, no STARTTLS: deferred, queue list --json shows
#                           attempts >= 1, last_error.code StartTLSUnavailable; queue
#                           show (JSON and text); queue delete removes it, no delivery
#   relay-verify-ok         verify to localhost:13126: delivered, tls_cert=verified
#   relay-verify-badname    verify to wrongname.test:13126: deferred TLSCertName, again
#                           on the retry, never delivered; then deleted
#   relay-down-up           D stopped: deferred (TCPConnect); D started, queue retry:
#                           delivered exactly once, queue empty
#   relay-bounce-pop3       550 5.1.1 from Postfix: a multipart/report bounce for alice,
#                           fetched over POP3S with poplib (R's CA), Action failed,
#                           Status 5.1.1, Diagnostic-Code with Postfix's text
#   relay-smarthost-auth    R2 -> smarthost localhost:10587 (verify, AUTH from a 0600
#                           password file): in bob's Maildir, Received "with ESMTPSA"
#   relay-open-relay        MX port (plain and STARTTLS) refuses bob@example.test with
#                           550 5.7.1, takes local mail; submission without AUTH: 530
#   relay-metrics           mailsec_relay_deliveries_total{result="delivered",tls="tls"}
#                           > 0, mailsec_queue_messages present
#   relay-kill9             10 rounds of kill -9 (see rl_round); no acknowledged
#                           message lost, duplicates <= workers and <= still queued
#
# Routes of R:
#   example.test     -> 127.0.0.1:10026       may     (shared Postfix)
#   plain.test       -> 127.0.0.1:13125       may     (P, no STARTTLS)
#   plainverify.test -> 127.0.0.1:13125       verify  (P, no STARTTLS)
#   ver.test         -> localhost:13126       verify  (P, cert names localhost)
#   badname.test     -> wrongname.test:13126  verify  (P, cert lacks that name)
#   dest.test        -> 127.0.0.1:13225       may     (D)
#   slow.test        -> 127.0.0.1:13325       may     (S)

RL_DIR=$W/relay
RL_HOST=127.0.0.1
RL_MX=13025 RL_SUB=13587 RL_SMTPS=13465 RL_POP3=13110 RL_POP3S=13995 RL_METRICS=13900
RL_D_MX=13225 RL_R2_SUB=13687 RL_PF_PLAIN=13125 RL_PF_TLS=13126 RL_SINK=13325 RL_DNS=13053
RL_DOMAIN=relay.test
RL_R=$RL_DIR/r RL_D=$RL_DIR/d RL_R2=$RL_DIR/r2 RL_PF=$RL_DIR/pf RL_PFMAIL=$RL_DIR/pf-mail RL_SINKDIR=$RL_DIR/sink
RL_DATA=$RL_R/data
RL_CA=$RL_DATA/tls/ca.pem
RL_ALICE_PASS='rl-Al1ce pass!'
RL_BOB_PASS='rl-b0b'
RL_WORKERS=4

# ---------------------------------------------------------------- helpers

# rl_cleanup: stop everything this section started (registered with
# on_exit before anything starts)
rl_cleanup() {
  kill_pidfiles "$RL_DIR"/*/pid "$RL_DIR"/*.pid
  [[ -e $RL_PF/spool/pid/master.pid ]] && postfix -c "$RL_PF/etc" stop
  return 0
}

# rl_conf_head DIR DOMAIN HOSTNAME [METRICS]: the top of a serve.toml
rl_conf_head() {
  cat <<EOF
data_dir = "$1/data"
hostname = "$3"
domains = ["$2"]
metrics = "${4:-}"

[limits]
auth_failure_delay = "100ms"
shutdown_timeout = "5s"
EOF
}

# rl_listener NAME KIND PORT [TLS]
rl_listener() {
  printf '\n[[listener]]\nname = "%s"\naddress = "%s:%s"\nkind = "%s"\n' "$1" "$RL_HOST" "$3" "$2"
  [[ -n ${4:-} ]] && printf 'tls = "%s"\n' "$4"
  return 0
}

# rl_relay_common: the [relay] keys every relaying instance here shares
rl_relay_common() {
  cat <<EOF

[relay]
enabled = true
resolver = "$RL_HOST:$RL_DNS"
tls = "may"
ca_file = "$CA_PEM"
backoff_min = "1s"
backoff_max = "2s"
connect_timeout = "5s"
command_timeout = "30s"
concurrency = $RL_WORKERS
workers = $RL_WORKERS
connection_reuse = "1s"
EOF
}

# rl_route DOMAIN NEXT_HOP TLS
rl_route() { printf '\n[[relay.route]]\ndomain = "%s"\nnext_hop = "%s"\ntls = "%s"\n' "$@"; }

# rl_serve DIR PORT: start the serve of DIR (see serve_start)
rl_serve() { serve_start "$1" "$RL_HOST" "$2"; }

# rl_stop DIR [SIGNAL]: stop the serve of DIR and wait for it to exit
rl_stop() { stop_pidfile "$@"; }

# rl_users DIR USER PASS: mailsec users add
rl_users() {
  printf '%s' "$3" | "$BIN" users add "$2" --data "$1/data" >>"$1/users.log" 2>&1 ||
    why "users add $2 ($1): $(tail -n 1 "$1/users.log")"
}

# rl_send PORT TO ID [FROM]: submit a fresh message as alice through R's
# (or, with RL_SEND_CA, another instance's) submission PORT; sets RL_RC,
# RL_OUT and RL_MSG
rl_send() {
  local port=$1 to=$2 id=$3 from=${4:-alice@$RL_DOMAIN}
  RL_MSG=$MSGS/$CHECK.$id.eml
  RL_OUT=$LOGS/$CHECK.send.$id.json
  relay_msg "$RL_MSG" "Alice <$from>" "$to" "$id"
  relay_submit "$RL_HOST:$port" "$RL_ALICE_PASS" "${RL_SEND_CA:-$RL_CA}" "$from" "$to" "$RL_MSG" "$RL_OUT"
  RL_RC=$?
}

# rl_send_ok PORT TO ID [FROM]: rl_send, which must be acknowledged
rl_send_ok() {
  rl_send "$@"
  ((RL_RC == 0)) || submit_failed "$RL_RC" "$2" "$RL_HOST:$1" "$RL_OUT"
}

# rl_queue ARGS...: mailsec queue ARGS on R's data dir, stdout in $Q
rl_queue() { queue_json "$RL_DATA" "$@"; }

# rl_qentry RCPT: the queue list entry (JSON) whose recipients include RCPT
rl_qentry() { queue_entry "$RL_DATA" "$1"; }

# rl_nqueued RCPT: how many messages of the last rl_queue list are for RCPT
rl_nqueued() { jq --arg t "$1" '[.messages[] | select(.recipients | index($t))] | length' "$Q"; }

# rl_wait_deferred RCPT SECONDS: wait until RCPT's message is in the queue
# with attempts >= 1 and a last_error; print the entry
rl_wait_deferred() {
  local i e
  for ((i = 0; i < $2 * 4; i++)); do
    e=$(rl_qentry "$1")
    if [[ -n $e ]] && jq -e '.attempts >= 1 and .last_error != null' <<<"$e" >/dev/null; then
      echo "$e"
      return 0
    fi
    sleep 0.25
  done
  return 1
}

# rl_wait_gone RCPT SECONDS: wait until no queued message is for RCPT
rl_wait_gone() {
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    rl_queue list && [[ $(rl_nqueued "$1") == 0 ]] && return 0
    sleep 0.25
  done
  return 1
}

# rl_attempts RCPT: R's "delivery attempt" log lines for RCPT
rl_attempts() { grep -F 'msg="delivery attempt"' "$RL_R/serve.log" | grep -F "to=$1 "; }

# rl_attempt_line RCPT: the last of them
rl_attempt_line() { rl_attempts "$1" | tail -n 1; }

# rl_wait_attempt RCPT SECONDS RESULT: wait for an attempt line with result=RESULT
rl_wait_attempt() {
  local i l
  for ((i = 0; i < $2 * 4; i++)); do
    l=$(rl_attempts "$1" | grep -F "result=$3 " | tail -n 1)
    if [[ -n $l ]]; then
      echo "$l"
      return 0
    fi
    sleep 0.25
  done
  return 1
}

# rl_uniq: a short random token for unique local parts
rl_uniq() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n'; }

# rl_count_ids DIR...: "COUNT MESSAGE-ID" lines of the messages stored in DIRs
rl_count_ids() {
  find "$@" -type f -print0 2>/dev/null | xargs -0 -r grep -h -m1 -i '^Message-ID:' | tr -d '\r' |
    sed 's/^[^<]*<\([^>]*\)>.*/\1/' | sort | uniq -c
}

# rl_stored DIR TAG: how many distinct messages of the kill -9 round TAG are in DIR
rl_stored() { rl_count_ids "$1" | grep -cF "kill9-$2-"; }

# ---------------------------------------------------------------- peers of this section

rl_dns_start() {
  cat >"$RL_DIR/dns.py" <<'EOF'
# A stub DNS server: A records for a few names, NXDOMAIN for the rest.
import socket, socketserver, struct, sys, threading
HOSTS = {"localhost.": "127.0.0.1", "wrongname.test.": "127.0.0.1"}
def answer(q):
    if len(q) < 12:
        return None
    qid, flags, qd = struct.unpack(">HHH", q[:6])
    off, labels = 12, []
    while q[off]:
        n = q[off]
        labels.append(q[off + 1:off + 1 + n].decode("ascii", "replace").lower())
        off += n + 1
    off += 1
    qtype, qclass = struct.unpack(">HH", q[off:off + 4])
    question = q[12:off + 4]
    name = ".".join(labels) + "."
    rd = flags & 0x0100
    if name not in HOSTS:
        return struct.pack(">HHHHHH", qid, 0x8080 | rd | 3, 1, 0, 0, 0) + question
    if qtype != 1:
        return struct.pack(">HHHHHH", qid, 0x8480 | rd, 1, 0, 0, 0) + question
    rr = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(HOSTS[name])
    return struct.pack(">HHHHHH", qid, 0x8480 | rd, 1, 1, 0, 0) + question + rr
class U(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        a = answer(data)
        if a:
            sock.sendto(a, self.client_address)
class T(socketserver.BaseRequestHandler):
    def handle(self):
        f = self.request.makefile("rb")
        while True:
            h = f.read(2)
            if len(h) < 2:
                return
            a = answer(f.read(struct.unpack(">H", h)[0]))
            if a:
                self.request.sendall(struct.pack(">H", len(a)) + a)
class TU(socketserver.ThreadingMixIn, socketserver.UDPServer): allow_reuse_address = True
class TT(socketserver.ThreadingMixIn, socketserver.TCPServer): allow_reuse_address = True; daemon_threads = True
host, port = sys.argv[1], int(sys.argv[2])
u, t = TU((host, port), U), TT((host, port), T)
threading.Thread(target=t.serve_forever, daemon=True).start()
print("ready", flush=True)
u.serve_forever()
EOF
  python3 "$RL_DIR/dns.py" "$RL_HOST" "$RL_DNS" >"$RL_DIR/dns.log" 2>&1 &
  echo $! >"$RL_DIR/dns.pid"
  wait_port "$RL_HOST" "$RL_DNS" 50 0.1 || why "DNS stub does not listen: $(tail -n 2 "$RL_DIR/dns.log")"
}

rl_sink_start() {
  mkdir -p "$RL_SINKDIR/msgs" "$RL_SINKDIR/inflight"
  echo 0 >"$RL_SINKDIR/delay"
  cat >"$RL_SINKDIR/sink.py" <<'EOF'
# A minimal SMTP server: stores each message (after a configurable delay,
# before the 250), so that deliveries can be caught in flight.
import os, socketserver, sys, time, uuid
DIR = sys.argv[3]
class H(socketserver.StreamRequestHandler):
    def handle(self):
        w = lambda s: (self.wfile.write(s.encode() + b"\r\n"), self.wfile.flush())
        # a "hold" file keeps new sessions waiting for the greeting
        while os.path.exists(os.path.join(DIR, "hold")):
            time.sleep(0.05)
        w("220 sink.test ESMTP slow sink")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("ascii", "replace").strip()
            verb = cmd[:4].upper()
            if verb == "EHLO":
                w("250-sink.test"); w("250-8BITMIME"); w("250 ENHANCEDSTATUSCODES")
            elif verb == "HELO":
                w("250 sink.test")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                w("250 2.0.0 ok")
            elif verb == "DATA":
                w("354 go ahead")
                data = []
                while True:
                    l = self.rfile.readline()
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    data.append(l[1:] if l.startswith(b".") else l)
                try:
                    d = float(open(os.path.join(DIR, "delay")).read().strip() or 0)
                except Exception:
                    d = 0
                name = "%d.%s.eml" % (time.time_ns(), uuid.uuid4().hex)
                mark = os.path.join(DIR, "inflight", name)
                open(mark, "w").close()
                time.sleep(d)
                tmp = os.path.join(DIR, "tmp." + name)
                with open(tmp, "wb") as f:
                    f.write(b"".join(data))
                os.rename(tmp, os.path.join(DIR, "msgs", name))
                try:
                    w("250 2.0.0 stored " + name)
                finally:
                    os.unlink(mark)
            elif verb == "QUIT":
                w("221 2.0.0 bye")
                return
            else:
                w("502 5.5.2 not implemented")
class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
EOF
  python3 "$RL_SINKDIR/sink.py" "$RL_HOST" "$RL_SINK" "$RL_SINKDIR" >"$RL_SINKDIR/sink.log" 2>&1 &
  echo $! >"$RL_SINKDIR/pid"
  wait_port "$RL_HOST" "$RL_SINK" 50 0.1 || why "SMTP sink does not listen: $(tail -n 2 "$RL_SINKDIR/sink.log")"
}

rl_postfix_start() {
  local uid gid d
  uid=$(id -u vmail 2>/dev/null) gid=$(id -g vmail 2>/dev/null)
  [[ -n $uid ]] || why "no user vmail (made by peers.sh)" || return 1
  mkdir -p "$RL_PFMAIL"
  : >"$RL_DIR/pf-vmailbox"
  for d in plain plainverify ver badname; do
    printf '@%s.test %s/\n' "$d" "$d" >>"$RL_DIR/pf-vmailbox"
  done
  chmod 644 "$RL_DIR/pf-vmailbox"
  chown -R vmail:vmail "$RL_PFMAIL"
  chmod o+x "$W" "$RL_DIR"
  private_postfix "$RL_PF" relay "$RL_HOST:$RL_PF_PLAIN -o smtpd_tls_security_level=none" \
    "$RL_HOST:$RL_PF_TLS -o smtpd_tls_security_level=may" <<EOF
myhostname = mx.pf.test
inet_interfaces = $RL_HOST
default_transport = error:nothing leaves this test instance
virtual_mailbox_domains = plain.test plainverify.test ver.test badname.test
virtual_mailbox_base = $RL_PFMAIL
virtual_mailbox_maps = texthash:$RL_DIR/pf-vmailbox
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 100
smtpd_tls_chain_files = $SERVER_KEY, $SERVER_CERT
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
always_add_missing_headers = no
EOF
}

# rl_conf_r: R's configuration
rl_conf_r() {
  {
    rl_conf_head "$RL_R" "$RL_DOMAIN" "relay.localhost" "$RL_HOST:$RL_METRICS"
    rl_listener mx mx "$RL_MX" may
    rl_listener submission submission "$RL_SUB"
    rl_listener smtps smtps "$RL_SMTPS"
    rl_listener pop3 pop3 "$RL_POP3"
    rl_listener pop3s pop3s "$RL_POP3S"
    rl_relay_common
    rl_route example.test "$RL_HOST:$SMTP_MX_PORT" may
    rl_route plain.test "$RL_HOST:$RL_PF_PLAIN" may
    rl_route plainverify.test "$RL_HOST:$RL_PF_PLAIN" verify
    rl_route ver.test "localhost:$RL_PF_TLS" verify
    rl_route badname.test "wrongname.test:$RL_PF_TLS" verify
    rl_route dest.test "$RL_HOST:$RL_D_MX" may
    rl_route slow.test "$RL_HOST:$RL_SINK" may
  } >"$RL_R/serve.toml"
}

# rl_conf_d: D's configuration (an MX listener only, no metrics)
rl_conf_d() {
  {
    rl_conf_head "$RL_D" dest.test "dest.localhost"
    rl_listener mx mx "$RL_D_MX" may
  } >"$RL_D/serve.toml"
}

rl_setup() {
  need_bin || return 1
  # leftovers of an interrupted run in the same work dir
  [[ -d $RL_DIR ]] && rl_cleanup >/dev/null 2>&1
  rm -rf "$RL_DIR"
  mkdir -p "$RL_R" "$RL_D" "$RL_R2" "$RL_SINKDIR"
  rl_dns_start || return 1
  rl_sink_start || return 1
  rl_postfix_start || return 1
  rl_conf_d
  rl_users "$RL_D" bob "$RL_BOB_PASS" || return 1
  rl_serve "$RL_D" "$RL_D_MX" || return 1
  rl_conf_r
  rl_users "$RL_R" alice "$RL_ALICE_PASS" || return 1
  rl_serve "$RL_R" "$RL_SUB" || return 1
  [[ -r $RL_CA ]] || why "no generated CA at $RL_CA"
}
on_exit rl_cleanup
check relay-setup rl_setup

# ---------------------------------------------------------------- 1, 2: may

# 1. STARTTLS offered (the shared Postfix's MX port): delivered over TLS.
t_rl_starttls() {
  local id f rcvd l
  id=$(newid)
  rl_send_ok "$RL_SUB" "$BOB_ADDR" "$id" || return 1
  f=$(wait_maildir "$BOB_MAILDIR" "$id" 30) || why "<$id> not in $BOB_MAILDIR within 30s; R log: $(rl_attempt_line "$BOB_ADDR")" || return 1
  rcvd=$(first_received "$f")
  [[ $rcvd == *"using TLSv1."[23]* ]] || why "Postfix's Received header shows no TLS: ${rcvd:0:240}" || return 1
  same_tail "$f" "$RL_MSG" || why "delivered bytes differ from sent: $(diff_hint "$f" "$RL_MSG")" || return 1
  l=$(rl_wait_attempt "$BOB_ADDR" 10 delivered) || why "no 'delivery attempt' line with result=delivered for $BOB_ADDR in R's log" || return 1
  echo "$l"
  [[ $l == *" tls_policy=may "* ]] || why "attempt line lacks tls_policy=may: $l" || return 1
  [[ $l =~ \ tls_version=\"?TLS ]] || why "attempt line lacks a tls_version: $l" || return 1
  [[ $l == *" reply=250 "* ]] || why "attempt line lacks reply=250: $l"
}
check relay-starttls t_rl_starttls

# 2. No STARTTLS offered (private Postfix 13125) under may: plain delivery.
t_rl_plain_may() {
  local id to f rcvd l
  id=$(newid)
  to=p-$(rl_uniq)@plain.test
  rl_send_ok "$RL_SUB" "$to" "$id" || return 1
  f=$(wait_maildir "$RL_PFMAIL/plain" "$id" 30) || why "<$id> not delivered to P within 30s; R log: $(rl_attempt_line "$to")" || return 1
  rcvd=$(first_received "$f")
  [[ $rcvd != *"using TLS"* ]] || why "Received shows TLS on a port without STARTTLS: ${rcvd:0:200}" || return 1
  l=$(rl_wait_attempt "$to" 10 delivered) || why "no delivered attempt line for $to" || return 1
  echo "$l"
  [[ $l == *" tls_policy=may "* ]] || why "attempt line lacks tls_policy=may: $l" || return 1
  [[ $l == *' tls_version="" '* || $l != *"tls_version="* ]] || why "attempt line has a tls_version in plain: $l"
}
check relay-plain-may t_rl_plain_may

# ---------------------------------------------------------------- 3, 4: verify

# 3. verify to a server without STARTTLS: deferred, never sent in plain;
# queue list/show/delete.
t_rl_verify_no_starttls() {
  local id to e qid
  id=$(newid)
  to=v-$(rl_uniq)@plainverify.test
  rl_send_ok "$RL_SUB" "$to" "$id" || return 1
  e=$(rl_wait_deferred "$to" 30) || why "no deferred queue entry for $to within 30s: $(head -c 300 "$LOGS/$CHECK.queue.json")" || return 1
  echo "$e"
  qid=$(jq -r .id <<<"$e")
  [[ $(jq -r .last_error.code <<<"$e") == StartTLSUnavailable ]] ||
    why "last_error.code $(jq -c .last_error <<<"$e"), want StartTLSUnavailable" || return 1
  rl_queue show "$qid" || why "queue show $qid failed: $(tail -n 1 "$Q.stderr")" || return 1
  jq -e --arg id "$qid" --arg r "$to" '.ok and .message.id == $id and (.message.recipients[0].addr == $r) and .message.attempts >= 1' "$Q" >/dev/null ||
    why "queue show output unexpected: $(head -c 300 "$Q")" || return 1
  # text form too
  timeout 30 "$BIN" queue show "$qid" --data "$RL_DATA" >"$LOGS/$CHECK.show.txt" 2>&1 || why "queue show (text) failed" || return 1
  grep -q "$to" "$LOGS/$CHECK.show.txt" || why "queue show text lacks the recipient" || return 1
  wait_maildir "$RL_PFMAIL/plainverify" "$id" 1 >/dev/null && { why "delivered in plain despite tls=verify"; return 1; }
  rl_queue delete "$qid" || why "queue delete $qid failed: $(tail -n 1 "$Q.stderr")" || return 1
  rl_wait_gone "$to" 10 || why "message $qid still listed after queue delete" || return 1
  ! rl_queue show "$qid" || why "queue show of a deleted message succeeded" || return 1
  sleep 2.5 # a retry would come within backoff_max
  wait_maildir "$RL_PFMAIL/plainverify" "$id" 1 >/dev/null && { why "delivered after delete"; return 1; }
  return 0
}
check relay-verify-no-starttls t_rl_verify_no_starttls

# 4a. verify, the certificate names the next hop (localhost): delivered.
t_rl_verify_ok() {
  local id to f l
  id=$(newid)
  to=v-$(rl_uniq)@ver.test
  rl_send_ok "$RL_SUB" "$to" "$id" || return 1
  f=$(wait_maildir "$RL_PFMAIL/ver" "$id" 30) || why "not delivered within 30s; R log: $(rl_attempt_line "$to")" || return 1
  [[ $(first_received "$f") == *"using TLS"* ]] || why "Received shows no TLS: $(first_received "$f" | cut -c1-200)" || return 1
  l=$(rl_wait_attempt "$to" 10 delivered) || why "no delivered attempt line" || return 1
  echo "$l"
  [[ $l == *" tls_policy=verify "* && $l == *" tls_cert=verified"* ]] || why "attempt line lacks tls_policy=verify tls_cert=verified: $l"
}
check relay-verify-ok t_rl_verify_ok

# 4b. verify, the certificate does not name the next hop (wrongname.test):
# deferred with TLSCertName, never delivered.
t_rl_verify_badname() {
  local id to e qid n
  openssl x509 -in "$SERVER_CERT" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tee "$LOGS/$CHECK.san"
  grep -q wrongname "$LOGS/$CHECK.san" && { why "the peers' certificate names wrongname.test"; return 1; }
  id=$(newid)
  to=b-$(rl_uniq)@badname.test
  rl_send_ok "$RL_SUB" "$to" "$id" || return 1
  e=$(rl_wait_deferred "$to" 30) || why "no deferred entry for $to: $(head -c 300 "$LOGS/$CHECK.queue.json")" || return 1
  qid=$(jq -r .id <<<"$e")
  [[ $(jq -r .last_error.code <<<"$e") == TLSCertName ]] || why "last_error $(jq -c .last_error <<<"$e"), want code TLSCertName" || return 1
  # let it be retried at least once more (backoff 1s..2s): still refused
  for ((n = 0; n < 40; n++)); do
    e=$(rl_qentry "$to")
    [[ -n $e ]] && (($(jq -r .attempts <<<"$e") >= 2)) && break
    sleep 0.25
  done
  echo "$e"
  (($(jq -r .attempts <<<"$e") >= 2)) || why "not retried within 10s: $e" || return 1
  [[ $(jq -r .last_error.code <<<"$e") == TLSCertName ]] || why "retry: last_error $(jq -c .last_error <<<"$e")" || return 1
  ! grep -F "to=$to " "$RL_R/serve.log" | grep -q 'result=delivered' || why "R logged a delivery to $to" || return 1
  wait_maildir "$RL_PFMAIL/badname" "$id" 1 >/dev/null && { why "delivered despite the name mismatch"; return 1; }
  grep -F "to=$to " "$RL_R/serve.log" | tail -n 1
  rl_queue delete "$qid" || why "queue delete failed" || return 1
}
check relay-verify-badname t_rl_verify_badname

# ---------------------------------------------------------------- 5: down, up

t_rl_down_up() {
  local id to e qid f n
  to=bob@dest.test
  rl_stop "$RL_D" || return 1
  port_open "$RL_HOST" "$RL_D_MX" && { why "D still listens after stop"; return 1; }
  id=$(newid)
  rl_send_ok "$RL_SUB" "$to" "$id" || return 1
  e=$(rl_wait_deferred "$to" 30) || why "no deferred entry for $to while D is down" || return 1
  echo "down: $e"
  qid=$(jq -r .id <<<"$e")
  rl_serve "$RL_D" "$RL_D_MX" || return 1
  timeout 30 "$BIN" queue retry "$qid" --data "$RL_DATA" >"$LOGS/$CHECK.retry" 2>&1 || why "queue retry $qid: $(tail -n 1 "$LOGS/$CHECK.retry")" || return 1
  cat "$LOGS/$CHECK.retry"
  f=$(wait_maildir "$RL_D/data/mail/bob" "$id" 30) || why "not delivered to D within 30s after it came back: $(rl_attempt_line "$to")" || return 1
  rl_wait_gone "$to" 15 || why "still queued after delivery" || return 1
  sleep 3 # a duplicate would come within backoff_max
  n=$(grep -rlF -- "Message-ID: <$id>" "$RL_D/data/mail/bob" | wc -l)
  ((n == 1)) || why "delivered $n times, want exactly once"
}
check relay-down-up t_rl_down_up

# ---------------------------------------------------------------- 6: bounce

t_rl_bounce_pop3() {
  local id to
  id=$(newid)
  to=nosuchuser-$(rl_uniq)@example.test
  rl_send_ok "$RL_SUB" "$to" "$id" || return 1
  rl_wait_attempt "$to" 30 bounced || why "no bounced attempt for $to in R's log: $(rl_attempt_line "$to")" || return 1
  rl_wait_gone "$to" 15 || why "the bounced message stayed queued" || return 1
  wait_mail_with "$RL_DATA/mail/alice" "$id" 15 >/dev/null
  MAILSEC_T_PW=$RL_ALICE_PASS timeout 60 python3 - "$RL_HOST" "$RL_POP3S" "$RL_CA" "$id" "$to" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' ||
import email, email.policy, os, poplib, ssl, sys
host, port, ca, mid, rcpt = sys.argv[1:]
p = poplib.POP3_SSL(host, int(port), context=ssl.create_default_context(cafile=ca))
p.user("alice"); p.pass_(os.environ["MAILSEC_T_PW"])
found = None
for line in p.list()[1]:
    n = int(line.split()[0])
    raw = b"\r\n".join(p.retr(n)[1]) + b"\r\n"
    if mid.encode() in raw:
        found = raw
p.quit()
if found is None:
    sys.exit("no message mentioning <%s> in alice's POP3 mailbox" % mid)
m = email.message_from_bytes(found, policy=email.policy.default)
print(found.decode("utf-8", "replace")[:4000])
ct = m.get_content_type()
if ct != "multipart/report" or m.get_param("report-type") != "delivery-status":
    sys.exit("Content-Type %s report-type=%s, want multipart/report; report-type=delivery-status" % (ct, m.get_param("report-type")))
if m.get("To", "").find("alice@") < 0:
    sys.exit("bounce To: %r" % m.get("To"))
ds = [part for part in m.walk() if part.get_content_type() == "message/delivery-status"]
if not ds:
    sys.exit("no message/delivery-status part")
part = ds[0]
text = part.as_bytes().decode("utf-8", "replace")
# (the stdlib parses message/delivery-status into header blocks)
blocks = [b.as_string() for b in part.get_payload()] if part.is_multipart() else [text]
t = "\n".join(blocks)
import re
def field(name):
    mm = re.search(r"(?im)^" + name + r":\s*(.*(?:\n[ \t].*)*)", t)
    return re.sub(r"\s+", " ", mm.group(1)).strip() if mm else None
if (field("Action") or "").lower() != "failed":
    sys.exit("Action: %r, want failed" % field("Action"))
if field("Status") != "5.1.1":
    sys.exit("Status: %r, want 5.1.1" % field("Status"))
fr = field("Final-Recipient") or ""
if rcpt.lower() not in fr.lower():
    sys.exit("Final-Recipient: %r, want %s" % (fr, rcpt))
dc = field("Diagnostic-Code") or ""
if not dc.lower().startswith("smtp;") or "550" not in dc or "user unknown" not in dc.lower():
    sys.exit("Diagnostic-Code: %r, want smtp; 550 5.1.1 ... User unknown ... (Postfix's text)" % dc)
print("OK Diagnostic-Code:", dc)
EOF
    why "bounce over POP3S: $(tail -n 1 "$LOGS/$CHECK.py")"
}
check relay-bounce-pop3 t_rl_bounce_pop3

# ---------------------------------------------------------------- 7: smarthost

t_rl_smarthost() {
  local id f rcvd
  printf '%s\n' "$ALICE_PASS" >"$RL_R2/smarthost.pw"
  chmod 600 "$RL_R2/smarthost.pw"
  {
    rl_conf_head "$RL_R2" relay2.test "relay2.localhost"
    rl_listener submission submission "$RL_R2_SUB"
    rl_relay_common
    cat <<EOF
smarthost = "localhost:$SMTP_SUBMISSION_PORT"
smarthost_tls = "verify"
smarthost_user = "$ALICE_USER"
smarthost_password_file = "$RL_R2/smarthost.pw"
EOF
  } >"$RL_R2/serve.toml"
  rl_users "$RL_R2" alice "$RL_ALICE_PASS" || return 1
  rl_serve "$RL_R2" "$RL_R2_SUB" || return 1
  id=$(newid)
  RL_SEND_CA=$RL_R2/data/tls/ca.pem rl_send_ok "$RL_R2_SUB" "$BOB_ADDR" "$id" alice@relay2.test || { rl_stop "$RL_R2"; return 1; }
  f=$(wait_maildir "$BOB_MAILDIR" "$id" 30)
  local got=$?
  grep -F 'msg="delivery attempt"' "$RL_R2/serve.log" | tail -n 2
  rl_stop "$RL_R2"
  ((got == 0)) || why "not in bob's Maildir within 30s: $(grep -F 'delivery attempt' "$RL_R2/serve.log" | tail -n 1 | cut -c1-300)" || return 1
  rcvd=$(first_received "$f")
  echo "$rcvd"
  [[ $rcvd == *"with ESMTPSA"* ]] || why "Postfix's Received does not say ESMTPSA: ${rcvd:0:240}" || return 1
  [[ $rcvd == *"using TLS"* ]] || why "Received shows no TLS: ${rcvd:0:240}" || return 1
  local m
  m=$(sasl_method "$id") || why "Postfix logged no sasl_method for <$id>" || return 1
  echo "sasl_method=$m"
  ! grep -qF -- "$ALICE_PASS" "$RL_R2/serve.log" "$RL_R2/banner.txt" || why "the smarthost password is in R2's output"
}
check relay-smarthost-auth t_rl_smarthost

# ---------------------------------------------------------------- 9: no open relay

t_rl_open_relay() {
  timeout 60 python3 - "$RL_HOST" "$RL_MX" "$RL_SUB" "$RL_CA" "$RL_DOMAIN" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' || why "$(tail -n 1 "$LOGS/$CHECK.py")"
import smtplib, ssl, sys
host, mx, sub, ca, dom = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
# MX port, no AUTH, with and without TLS: a non-local recipient is refused.
for tls in (False, True):
    s = smtplib.SMTP(host, int(mx), local_hostname="client.test", timeout=20)
    s.ehlo()
    if tls:
        s.starttls(context=ctx)
        s.ehlo()
    code, msg = s.mail("someone@elsewhere.test")
    if code != 250:
        sys.exit("MX MAIL refused: %d %r" % (code, msg))
    code, msg = s.rcpt("bob@example.test")
    print("MX tls=%s RCPT bob@example.test:" % tls, code, msg)
    if code != 550 or not msg.startswith(b"5.7.1"):
        sys.exit("MX relayed or refused oddly: RCPT -> %d %r, want 550 5.7.1" % (code, msg))
    code, msg = s.rcpt("alice@" + dom)
    print("MX RCPT local:", code, msg)
    if code != 250:
        sys.exit("MX refused the local recipient: %d %r" % (code, msg))
    s.rset(); s.quit()
# Submission without AUTH (after STARTTLS): refused.
s = smtplib.SMTP(host, int(sub), local_hostname="client.test", timeout=20)
s.ehlo(); s.starttls(context=ctx); s.ehlo()
code, msg = s.mail("alice@" + dom)
print("submission MAIL without AUTH:", code, msg)
if code == 250:
    code, msg = s.rcpt("bob@example.test")
    print("submission RCPT without AUTH:", code, msg)
if code < 500:
    sys.exit("submission without AUTH not refused: %d %r" % (code, msg))
s.quit()
EOF
  cat "$LOGS/$CHECK.py"
  rl_queue list || return 1
  [[ -z $(jq -r '.messages[] | select(.from == "someone@elsewhere.test") | .id' "$Q") ]] || why "a message from the unauthenticated client was queued"
}
check relay-open-relay t_rl_open_relay

# ---------------------------------------------------------------- 10: metrics

t_rl_metrics() {
  local v
  curl -sS --max-time 10 "http://$RL_HOST:$RL_METRICS/metrics" >"$RL_DIR/metrics.txt" 2>"$LOGS/$CHECK.curl" || why "cannot scrape metrics: $(cat "$LOGS/$CHECK.curl")" || return 1
  grep -E '^mailsec_(relay|queue)_' "$RL_DIR/metrics.txt"
  v=$(awk '$1 == "mailsec_relay_deliveries_total{result=\"delivered\",tls=\"tls\"}" {print $2}' "$RL_DIR/metrics.txt")
  [[ -n $v ]] && awk -v v="$v" 'BEGIN {exit !(v > 0)}' || why "mailsec_relay_deliveries_total{result=\"delivered\",tls=\"tls\"} is '${v}', want > 0" || return 1
  grep -Eq '^mailsec_queue_messages [0-9]' "$RL_DIR/metrics.txt" || why "mailsec_queue_messages missing" || return 1
  for v in 'result="delivered",tls="none"' 'result="delivered",tls="verified"' 'result="deferred",tls=' 'result="bounced",tls='; do
    grep -qF "mailsec_relay_deliveries_total{$v" "$RL_DIR/metrics.txt" || why "no mailsec_relay_deliveries_total{$v...}" || return 1
  done
}
check relay-metrics t_rl_metrics

# ---------------------------------------------------------------- 8: kill -9

RL_ROUNDS=${RL_ROUNDS:-10}
RL_BURST=${RL_BURST:-20}

# rl_burst TO TAG N PAR: submit N messages (Message-IDs kill9-TAG-i) to TO,
# PAR at a time; prints "ID RC" lines
rl_burst() {
  local to=$1 tag=$2 n=$3 par=$4 i
  for ((i = 1; i <= n; i++)); do
    (rl_send "$RL_SUB" "$to" "kill9-$tag-$i@relay.test"; echo "kill9-$tag-$i@relay.test $RL_RC") &
    ((i % par == 0)) && wait
  done
  wait
}

# rl_round N MODE: one round of the kill -9 check.
#   after-250, after-250-down: destination D (stopped for the round in the
#     -down variant, so that nothing gets delivered before the kill). The
#     burst is submitted one message at a time; right after the k-th
#     (random) submission was acknowledged (mailsec send exit 0), R is
#     killed with SIGKILL, restarted on the same data directory, and the
#     rest of the burst goes to the new process. In the -down variant the
#     offline queue listing must hold all k acknowledged messages.
#   in-flight: destination the slow sink (0.5 s per message after the end
#     of data, so up to $RL_WORKERS deliveries are in progress at any
#     moment). The sink holds new sessions before the greeting while the
#     burst is submitted (5 at a time), then lets them go; R is killed once
#     1..12 messages (random) reached the sink, i.e. in the middle of
#     deliveries, and restarted.
# Between the kill and the restart the queue is listed offline (mailsec queue
# list opens the embedded queue itself). Then, once none of the round's
# messages is queued: every acknowledged message arrived at least once; the
# duplicates (copies beyond the first) must not exceed $RL_WORKERS, the most
# deliveries that can be in flight when the process dies.
rl_round() {
  local round=$1 mode=$2 i k m id to dir rc have inflight=- queued=- tag
  local -a acked=()
  tag=r$round-$(rl_uniq)
  if [[ $mode == after-250* ]]; then
    to=bob@dest.test dir=$RL_D/data/mail/bob
    k=$((RANDOM % RL_BURST + 1))
    [[ $mode == after-250-down ]] && rl_stop "$RL_D"
    for ((i = 1; i <= RL_BURST; i++)); do
      id=kill9-$tag-$i@relay.test
      rl_send "$RL_SUB" "$to" "$id"
      rc=$RL_RC
      ((rc == 0)) || why "round $round: submission $i refused with exit $rc: $(tail -n 1 "$RL_OUT.stderr")" || return 1
      acked+=("$id")
      if ((i == k)); then
        rl_stop "$RL_R" KILL
        rl_queue list && queued=$(rl_nqueued "$to")
        echo "round $round ($mode): kill -9 right after acknowledged submission $k of $RL_BURST; $queued of them queued at the kill"
        if [[ $mode == after-250-down ]]; then
          [[ $queued == "$k" ]] || why "round $round: $k messages acknowledged while the destination was down, but the queue holds $queued after kill -9: $(head -c 300 "$Q")" || return 1
          rl_serve "$RL_D" "$RL_D_MX" || return 1
        fi
        rl_serve "$RL_R" "$RL_SUB" || return 1
      fi
    done
  else
    to=sink-$tag@slow.test dir=$RL_SINKDIR/msgs
    : >"$RL_SINKDIR/hold"
    rl_burst "$to" "$tag" "$RL_BURST" 5 >"$RL_DIR/burst.rc"
    have=$(rl_stored "$dir" "$tag")
    rm -f "$RL_SINKDIR/hold"
    while read -r id rc; do
      ((rc == 0)) || why "round $round: submission of <$id> refused with exit $rc" || return 1
      acked+=("$id")
    done <"$RL_DIR/burst.rc"
    ((${#acked[@]} == RL_BURST)) || why "round $round: ${#acked[@]} of $RL_BURST submissions reported" || return 1
    m=$((have + RANDOM % 12 + 1))
    for ((i = 0; i < 400; i++)); do
      (($(rl_stored "$dir" "$tag") >= m)) && break
      sleep 0.02
    done
    rl_stop "$RL_R" KILL
    inflight=$(find "$RL_SINKDIR/inflight" -type f | wc -l)
    rl_queue list && queued=$(rl_nqueued "$to")
    echo "round $round ($mode): kill -9 with $(rl_stored "$dir" "$tag") of $RL_BURST stored at the sink (target $m, $have during the burst), $inflight in the sink's DATA phase, $queued queued"
    rl_serve "$RL_R" "$RL_SUB" || return 1
    [[ $queued == - ]] || ((queued > 0)) || why "round $round: the queue was already empty at the kill (nothing in flight; the round tested nothing)" || return 1
  fi
  [[ $queued != - ]] || why "round $round: offline queue list failed: $(tail -n 1 "$Q.stderr")" || return 1
  # wait until none of this round's messages is queued
  for ((i = 0; i < 120; i++)); do
    rl_queue list && [[ $(rl_nqueued "$to") == 0 ]] && break
    sleep 0.25
  done
  [[ $(rl_nqueued "$to" 2>/dev/null) == 0 ]] ||
    why "round $round: messages still queued after 30s: $(jq -c '[.messages[] | {id, attempts, last_error}]' "$Q" | head -c 300)" || return 1
  # the sink may still be finishing a delivery of the killed process
  for ((i = 0; i < 50; i++)); do
    [[ -z $(find "$RL_SINKDIR/inflight" -type f) ]] && break
    sleep 0.1
  done
  rl_count_ids "$dir" | grep -F "kill9-$tag-" >"$RL_DIR/round.counts"
  local missing=0 dups=0 c
  for id in "${acked[@]}"; do
    c=$(awk -v id="$id" '$2 == id {print $1}' "$RL_DIR/round.counts")
    if [[ -z $c ]]; then
      missing=$((missing + 1))
      echo "round $round: acknowledged <$id> never arrived"
    elif ((c > 1)); then
      dups=$((dups + c - 1))
    fi
  done
  echo "round $round ($mode): ${#acked[@]} acknowledged, $(wc -l <"$RL_DIR/round.counts") arrived, $dups duplicate(s), $missing missing"
  RL_DUPS=$((RL_DUPS + dups))
  ((missing == 0)) || why "round $round ($mode): $missing acknowledged message(s) lost" || return 1
  ((dups <= RL_WORKERS)) || why "round $round ($mode): $dups duplicates, more than the $RL_WORKERS deliveries that can be in flight" || return 1
  # a message no longer queued at the kill was complete: never sent again
  ((dups <= queued)) || why "round $round ($mode): $dups duplicates but only $queued messages were still queued at the kill" || return 1
}

t_rl_kill9() {
  local r mode
  RL_DUPS=0
  echo 0.5 >"$RL_SINKDIR/delay"
  for ((r = 1; r <= RL_ROUNDS; r++)); do
    case $((r % 4)) in
      1) mode=after-250-down ;;
      3) mode=after-250 ;;
      *) mode=in-flight ;;
    esac
    rl_round "$r" "$mode" || { echo 0 >"$RL_SINKDIR/delay"; rm -f "$RL_SINKDIR/hold"; port_open "$RL_HOST" "$RL_D_MX" || rl_serve "$RL_D" "$RL_D_MX"; return 1; }
  done
  echo 0 >"$RL_SINKDIR/delay"
  echo "total duplicates over $RL_ROUNDS rounds: $RL_DUPS"
  ! grep -Eq 'panic|level=ERROR' "$RL_R/serve.log" || why "R logged: $(grep -Em1 'panic|level=ERROR' "$RL_R/serve.log" | cut -c1-300)"
}
check relay-kill9 t_rl_kill9
grep -h 'total duplicates' "$LOGS/relay-kill9.log" 2>/dev/null | sed 's/^/# relay-kill9: /'
