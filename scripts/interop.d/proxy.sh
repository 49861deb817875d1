# shellcheck shell=bash
# Proxy section of scripts/interop.sh: mailsec send (and fetch, when it
# exists) through real proxies to the shared Postfix and Dovecot.
#
# Proxies started here, on loopback, stopped at exit:
#   13080 microsocks, SOCKS5 without authentication
#   13081 microsocks, SOCKS5 with RFC 1929 user dave and a random password
#   13082 danted (Dante), SOCKS4 and SOCKS5 without authentication; it
#         refuses every target on port SMTP_PLAIN_PORT
#   13083 tinyproxy, HTTP CONNECT to the submission, SMTPS and POP3S ports
#   13084 tinyproxy, the same with Basic authentication (dave, the password)
#   13085 ssh -D (OpenSSH dynamic forwarding: SOCKS4, SOCKS4a and SOCKS5),
#         through a private sshd on 13086 with a key made here; the only
#         Debian SOCKS4a server (Dante 1.4 dials 0.0.0.1 for 4a requests)
#   13089 nothing: the unreachable proxy
# The server is always named "localhost": SOCKS5, SOCKS4a and CONNECT hand
# the name to the proxy (the transcript says so), and the certificate is
# checked against it, the real server's name, not the proxy's.
# Mail goes to alice (as in the SMTP section); fetches read dave's mailbox,
# which no other section touches.

PX=$W/proxy
mkdir -p "$PX"
chmod 755 "$PX"
PX_PASS=$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')
PX_DEAD=13089

# px_start NAME PORT CMD...: run CMD in the background, stop it at exit,
# and wait up to 5 s for its port
px_start() {
  local name=$1 port=$2 pid
  shift 2
  if port_open 127.0.0.1 "$port"; then
    echo "# proxy: port $port is already in use; $name not started" >&2
    return 1
  fi
  "$@" >"$LOGS/proxy-$name.log" 2>&1 &
  pid=$!
  on_exit "kill $pid"
  wait_port 127.0.0.1 "$port" 50 0.1 || { echo "# proxy: $name did not listen on $port (see $LOGS/proxy-$name.log)" >&2; return 1; }
}

cat >"$PX/danted.conf" <<EOF
logoutput: $PX/danted.log
internal: 127.0.0.1 port = 13082
external: lo
clientmethod: none
socksmethod: none
user.unprivileged: nobody
client pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks block {
  from: 0.0.0.0/0 to: 0.0.0.0/0 port = $SMTP_PLAIN_PORT
  log: connect error
}
socks pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
  command: connect
  log: connect error
}
EOF
px_tinyproxy_conf() {
  printf '%s\n' "User nobody" "Group nogroup" "Port $1" "Listen 127.0.0.1" "Timeout 60" "MaxClients 20" \
    "Allow 127.0.0.1" "ConnectPort $SMTP_SUBMISSION_PORT" "ConnectPort $SMTP_SMTPS_PORT" "ConnectPort $POP3S_PORT" "LogLevel Info"
}
px_tinyproxy_conf 13083 >"$PX/tinyproxy.conf"
{ px_tinyproxy_conf 13084; echo "BasicAuth dave $PX_PASS"; } >"$PX/tinyproxy-auth.conf"
chmod 644 "$PX"/*.conf

PX_UP=()
px_start microsocks 13080 microsocks -i 127.0.0.1 -p 13080 && PX_UP+=(microsocks)
px_start microsocks-auth 13081 microsocks -i 127.0.0.1 -p 13081 -u dave -P "$PX_PASS" && PX_UP+=(microsocks-auth)
px_start danted 13082 danted -f "$PX/danted.conf" -p "$PX/danted.pid" && PX_UP+=(danted)
px_start tinyproxy 13083 tinyproxy -d -c "$PX/tinyproxy.conf" && PX_UP+=(tinyproxy)
px_start tinyproxy-auth 13084 tinyproxy -d -c "$PX/tinyproxy-auth.conf" && PX_UP+=(tinyproxy-auth)

# OpenSSH: a private sshd (host and user keys made here, key login for
# root only from this key) and a client whose -D port is the SOCKS proxy.
px_ssh() {
  rm -rf "$PX/ssh"
  mkdir -p "$PX/ssh" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$PX/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$PX/ssh/user" || return 1
  cp "$PX/ssh/user.pub" "$PX/ssh/authorized_keys"
  printf '%s\n' "ListenAddress 127.0.0.1:13086" "HostKey $PX/ssh/host" "AuthorizedKeysFile $PX/ssh/authorized_keys" \
    "PasswordAuthentication no" "KbdInteractiveAuthentication no" "PermitRootLogin prohibit-password" \
    "AllowTcpForwarding yes" "StrictModes no" "UsePAM no" "PidFile $PX/ssh/sshd.pid" >"$PX/ssh/sshd_config"
  px_start sshd 13086 /usr/sbin/sshd -D -e -f "$PX/ssh/sshd_config" || return 1
  px_start ssh-socks 13085 ssh -N -D 127.0.0.1:13085 -p 13086 -i "$PX/ssh/user" -o BatchMode=yes \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes "root@127.0.0.1"
}
px_ssh && PX_UP+=(ssh-socks)

# px_up NAME: the proxy NAME is running
px_up() { [[ " ${PX_UP[*]} " == *" $1 "* ]] || why "$1 is not running (see $LOGS/proxy-$1.log)"; }

# px_no_secret FILE...: the proxy password appears in none of mailsec's
# output files, plain or in the base64 of a Basic credential
px_no_secret() {
  local s
  for s in "$PX_PASS" "$(printf 'dave:%s' "$PX_PASS" | base64 -w0)"; do
    if grep -qF -- "$s" "$@"; then
      why "output contains the proxy password (${s:0:6}...)"
      return 1
    fi
  done
}

# t_px_send PROXY-NAME PORT TLS KIND [ARGS...]: send a message as alice to
# localhost:PORT through the proxy (ARGS carry --proxy or nothing when the
# environment names it); it must arrive byte-identical over TLS, the
# transcript must show the KIND tunnel, and no proxy secret may show.
t_px_send() {
  local name=$1 port=$2 tls=$3 kind=$4 id msg f rcvd
  shift 4
  need_bin || return 1
  px_up "$name" || return 1
  id=$(newid)
  msg=$MSGS/$CHECK.eml
  mkmsg "$msg" "$id" random || { why "cannot build message"; return 1; }
  ms "$msg" --server "localhost:$port" --tls "$tls" --auth plain --user "$ALICE_USER" --ca-file "$CA_PEM" \
    --from "sender@$MAIL_DOMAIN" --to "$ALICE_ADDR" --json --transcript "$@" || return 1
  ((MS_RC == 0)) || why "exit $MS_RC, want 0: $(ms_summary)" || return 1
  grep -qF "=== $kind tunnel to localhost:$port open" "$MS_ERR" || why "no $kind tunnel to localhost:$port in the transcript" || return 1
  if [[ $kind != SOCKS4 ]]; then
    grep -qF "CONNECT localhost:$port" "$MS_ERR" || why "the proxy was not handed the name localhost" || return 1
  fi
  f=$(wait_delivered "$id" 10) || why "no file with Message-ID <$id> in $ALICE_MAILDIR within 10s" || return 1
  same_tail "$f" "$msg" || why "delivered bytes differ from sent: $(diff_hint "$f" "$msg")" || return 1
  rcvd=$(first_received "$f")
  [[ $rcvd == *"using TLS"* ]] || why "Postfix Received header shows no TLS: ${rcvd:0:200}" || return 1
  px_no_secret "$MS_OUT" "$MS_ERR"
}

# t_px_fail CODE EXIT PORT [ARGS...]: a send through a proxy that must fail
# with CODE in --json and exit EXIT, delivering nothing and leaking nothing
t_px_fail() {
  local code=$1 want=$2 port=$3 id msg got
  shift 3
  need_bin || return 1
  id=$(newid)
  msg=$MSGS/$CHECK.eml
  mkmsg "$msg" "$id" random || { why "cannot build message"; return 1; }
  ms "$msg" --server "localhost:$port" --user "$ALICE_USER" --ca-file "$CA_PEM" \
    --from "sender@$MAIL_DOMAIN" --to "$ALICE_ADDR" --json --transcript --timeout 20s "$@" || return 1
  json_valid || why "stdout is not one JSON object: $(head -c 200 "$MS_OUT")" || return 1
  got=$(json_code)
  [[ $got == "$code" ]] || why "error.code $got, want $code ($(jq -r '.error.message // empty' "$MS_OUT"))" || return 1
  ((MS_RC == want)) || why "exit $MS_RC, want $want" || return 1
  ! wait_delivered "$id" 1 >/dev/null || why "the message was delivered" || return 1
  px_no_secret "$MS_OUT" "$MS_ERR"
}

S5=socks5://127.0.0.1:13080
S5A=socks5://dave@127.0.0.1:13081
D5=socks5://127.0.0.1:13082
D4=socks4://127.0.0.1:13082
O4A=socks4a://127.0.0.1:13085
O4=socks4://127.0.0.1:13085
O5=socks5://127.0.0.1:13085
H=http://127.0.0.1:13083
HA=http://dave@127.0.0.1:13084

# Delivery through every proxy kind, to submission (STARTTLS) and SMTPS.
check proxy-send-microsocks-submission t_px_send microsocks "$SMTP_SUBMISSION_PORT" starttls SOCKS5 --proxy "$S5"
check proxy-send-microsocks-smtps t_px_send microsocks "$SMTP_SMTPS_PORT" implicit SOCKS5 --proxy "$S5"
t_px_send_auth() { MAILSEC_PROXY_PASSWORD=$PX_PASS t_px_send "$@"; }
check proxy-send-microsocks-auth-submission t_px_send_auth microsocks-auth "$SMTP_SUBMISSION_PORT" starttls SOCKS5 --proxy "$S5A"
check proxy-send-microsocks-auth-smtps t_px_send_auth microsocks-auth "$SMTP_SMTPS_PORT" implicit SOCKS5 --proxy "$S5A"
check proxy-send-danted-socks5-submission t_px_send danted "$SMTP_SUBMISSION_PORT" starttls SOCKS5 --proxy "$D5"
check proxy-send-danted-socks5-smtps t_px_send danted "$SMTP_SMTPS_PORT" implicit SOCKS5 --proxy "$D5"
check proxy-send-danted-socks4-submission t_px_send danted "$SMTP_SUBMISSION_PORT" starttls SOCKS4 --proxy "$D4"
check proxy-send-danted-socks4-smtps t_px_send danted "$SMTP_SMTPS_PORT" implicit SOCKS4 --proxy "$D4"
check proxy-send-openssh-socks4a-submission t_px_send ssh-socks "$SMTP_SUBMISSION_PORT" starttls SOCKS4a --proxy "$O4A"
check proxy-send-openssh-socks4a-smtps t_px_send ssh-socks "$SMTP_SMTPS_PORT" implicit SOCKS4a --proxy "$O4A"
check proxy-send-openssh-socks4-submission t_px_send ssh-socks "$SMTP_SUBMISSION_PORT" starttls SOCKS4 --proxy "$O4"
check proxy-send-openssh-socks5-smtps t_px_send ssh-socks "$SMTP_SMTPS_PORT" implicit SOCKS5 --proxy "$O5"
check proxy-send-tinyproxy-submission t_px_send tinyproxy "$SMTP_SUBMISSION_PORT" starttls "HTTP CONNECT" --proxy "$H"
check proxy-send-tinyproxy-smtps t_px_send tinyproxy "$SMTP_SMTPS_PORT" implicit "HTTP CONNECT" --proxy "$H"
check proxy-send-tinyproxy-auth-submission t_px_send_auth tinyproxy-auth "$SMTP_SUBMISSION_PORT" starttls "HTTP CONNECT" --proxy "$HA"

# probe through a proxy: capabilities on both sides of STARTTLS and a
# certificate verified against localhost.
t_px_probe() {
  local out=$LOGS/$CHECK.json err=$LOGS/$CHECK.stderr
  need_bin || return 1
  px_up danted || return 1
  timeout 60 "$BIN" probe --server "localhost:$SMTP_SUBMISSION_PORT" --ca-file "$CA_PEM" --json --transcript \
    --proxy "$D5" >"$out" 2>"$err" || why "probe exited $?: $(jq -r '.error.message // empty' "$out" 2>/dev/null)" || return 1
  jq -e '.ok and .verified and .before_tls.starttls and (.after_tls.auth | length > 0)' "$out" >/dev/null ||
    why "probe result: $(jq -c '{ok,verified,before_tls,after_tls}' "$out")" || return 1
  grep -qF "=== SOCKS5 tunnel to localhost:$SMTP_SUBMISSION_PORT open" "$err" || why "no SOCKS5 tunnel in the transcript"
}
check proxy-probe-danted-socks5 t_px_probe

# A password in the --proxy URL works, with a warning that the command
# line is visible to other users; it still shows in no output.
t_px_pw_in_url() {
  t_px_send microsocks-auth "$SMTP_SUBMISSION_PORT" starttls SOCKS5 --proxy "socks5://dave:$PX_PASS@127.0.0.1:13081" || return 1
  grep -qF 'visible to other local users' "$MS_ERR" || why "no warning about the password on the command line"
}
check proxy-send-password-in-url-warns t_px_pw_in_url

# Environment proxies are bypassed for loopback targets: MAILSEC_PROXY and
# ALL_PROXY name a dead proxy, yet the send to the local server goes
# through directly...
t_px_env_bypass() {
  export ALL_PROXY="socks5://127.0.0.1:$PX_DEAD" MAILSEC_PROXY="http://127.0.0.1:$PX_DEAD"
  t_deliver mailsec "$SMTP_SUBMISSION_PORT" starttls plain random --transcript || return 1
  ! grep -qF '[proxy]' "$MS_ERR" || why "the loopback target went through the environment's proxy"
}
check proxy-env-loopback-bypassed t_px_env_bypass
# ...and --proxy, naming one for this run, wins over the environment.
t_px_env_flag_wins() {
  export ALL_PROXY="socks5://127.0.0.1:$PX_DEAD" MAILSEC_PROXY="socks5://127.0.0.1:$PX_DEAD"
  t_px_send microsocks "$SMTP_SUBMISSION_PORT" starttls SOCKS5 --proxy "$S5"
}
check proxy-flag-beats-environment t_px_env_flag_wins

# Failures, each with its CSMail/SSL code and sysexits code.
t_px_fail_badpw() { MAILSEC_PROXY_PASSWORD=wrong-$PX_PASS t_px_fail "$@"; }
check proxy-socks5-wrong-password t_px_fail_badpw ProxyAuthFailed 77 "$SMTP_SUBMISSION_PORT" --proxy "$S5A"
check proxy-socks5-no-credentials t_px_fail ProxyAuthRequired 77 "$SMTP_SUBMISSION_PORT" --proxy socks5://127.0.0.1:13081
check proxy-http-wrong-password t_px_fail_badpw ProxyAuthFailed 77 "$SMTP_SUBMISSION_PORT" --proxy "$HA"
check proxy-http-no-credentials t_px_fail ProxyAuthRequired 77 "$SMTP_SUBMISSION_PORT" --proxy http://127.0.0.1:13084
check proxy-unreachable t_px_fail ProxyNoConn 75 "$SMTP_SUBMISSION_PORT" --proxy "socks5://127.0.0.1:$PX_DEAD"
check proxy-danted-socks5-refuses-target t_px_fail ProxyRequestFailed 69 "$SMTP_PLAIN_PORT" --tls none --proxy "$D5"
check proxy-danted-socks4-refuses-target t_px_fail ProxyRequestFailed 69 "$SMTP_PLAIN_PORT" --tls none --proxy "$D4"
check proxy-tinyproxy-refuses-target t_px_fail ProxyRequestFailed 69 "$SMTP_PLAIN_PORT" --tls none --proxy "$H"
t_px_bad_url() {
  t_px_fail Config 78 "$SMTP_SUBMISSION_PORT" --proxy "ftp://dave:$PX_PASS@127.0.0.1:1"
}
check proxy-bad-url-hides-password t_px_bad_url

# Fetch through every proxy kind from Dovecot POP3S, as dave.
PX_FETCH_N=3
px_fill_dave() {
  local i f
  find "$DAVE_MAILDIR/new" "$DAVE_MAILDIR/cur" "$DAVE_MAILDIR/tmp" -type f -delete 2>/dev/null
  mkdir -p "$PX/sent"
  rm -f "$PX/sent"/*
  for ((i = 1; i <= PX_FETCH_N; i++)); do
    f=$PX/sent/m$i
    CHECK=proxy-fetch-$i mkmsg "$f" "$(newid)" random || return 1
    cp "$f" "$DAVE_MAILDIR/new/$(date +%s).px$i.$$.proxy"
  done
  chown -R vmail:vmail "$DAVE_MAILDIR"
}

# t_px_fetch NAME KIND [ARGS...]: fetch all of dave's mail through a proxy
# into a fresh Maildir; the files must be those placed there.
t_px_fetch() {
  local name=$1 kind=$2 box out err got want
  shift 2
  need_bin || return 1
  px_up "$name" || return 1
  box=$PX/box-$CHECK
  out=$LOGS/$CHECK.json
  err=$LOGS/$CHECK.stderr
  rm -rf "$box" "$box".*
  printf 'mailsec fetch' >"$LOGS/$CHECK.cmd"
  printf ' %q' "$@" >>"$LOGS/$CHECK.cmd"
  MAILSEC_PASSWORD=$DAVE_PASS timeout 120 "$BIN" fetch --server "localhost:$POP3S_PORT" --tls implicit --user "$DAVE_USER" \
    --ca-file "$CA_PEM" --maildir "$box" --json --transcript "$@" >"$out" 2>"$err"
  local rc=$?
  ((rc == 0)) || why "fetch exited $rc: $(jq -r '.error.message // empty' "$out" 2>/dev/null)" || return 1
  grep -qF "=== $kind tunnel to localhost:$POP3S_PORT open" "$err" || why "no $kind tunnel in the transcript" || return 1
  got=$(digests "$box/new" "$box/cur" 2>/dev/null)
  want=$(digests "$PX/sent")
  [[ $got == "$want" ]] || why "fetched messages differ from the $PX_FETCH_N placed in dave's Maildir" || return 1
  px_no_secret "$out" "$err"
}
t_px_fetch_auth() { MAILSEC_PROXY_PASSWORD=$PX_PASS t_px_fetch "$@"; }

if "$BIN" fetch --help >/dev/null 2>&1; then
  if px_fill_dave; then
    check proxy-fetch-microsocks t_px_fetch microsocks SOCKS5 --proxy "$S5"
    check proxy-fetch-microsocks-auth t_px_fetch_auth microsocks-auth SOCKS5 --proxy "$S5A"
    check proxy-fetch-danted-socks5 t_px_fetch danted SOCKS5 --proxy "$D5"
    check proxy-fetch-danted-socks4 t_px_fetch danted SOCKS4 --proxy "$D4"
    check proxy-fetch-openssh-socks4a t_px_fetch ssh-socks SOCKS4a --proxy "$O4A"
    check proxy-fetch-tinyproxy t_px_fetch tinyproxy "HTTP CONNECT" --proxy "$H"
    check proxy-fetch-tinyproxy-auth t_px_fetch_auth tinyproxy-auth "HTTP CONNECT" --proxy "$HA"
  else
    skip proxy-fetch "cannot fill dave's Maildir $DAVE_MAILDIR"
  fi
else
  skip proxy-fetch "this mailsec has no fetch command"
fi
