#!/usr/bin/env bash
# Interop tests of the mailsec CLI against real peers (Postfix + Dovecot, see
# scripts/peers.sh). Run as root from anywhere:
#
#   scripts/interop.sh
#
# Environment:
#   INTEROP_DIR=DIR   work dir (default: a fresh mktemp -d, removed when all pass)
#   INTEROP_KEEP=1    keep the work dir even when everything passed
#   INTEROP_REF=0     skip the reference-client (msmtp) checks
#   INTEROP_MAILSEC=/path/to/mailsec   test that binary instead of building one
#   INTEROP_PEERS=DIR use peers already running from "scripts/peers.sh start DIR"
#   INTEROP_SECTIONS="smtp pop3 ..."   run only these sections (default: all);
#                     "smtp" is the send checks below, the others are the
#                     files scripts/interop.d/NAME.sh
#
# Prints one line per check, "PASS name" or "FAIL name: reason" ("SKIP name:
# reason" lines do not count), then exactly "N passed, M failed"; exits 1 if
# M > 0. Per-check logs (command, stdout, stderr, message sent) are in
# WORKDIR/logs/. The peers are always stopped at exit.
#
# Contract of the CLI checked here (mailsec send):
#   mailsec send --server HOST:PORT --tls implicit|starttls|starttls-optional|none
#                --auth auto|none|plain|login|cram-md5|scram-sha-1|scram-sha-256|...
#                --user NAME --ca-file PEM --tls-server-name NAME
#                --from ADDR --to ADDR [--json] [--transcript]  < message
#   password from $MAILSEC_PASSWORD; --json: one JSON object on stdout, on failure
#   with .error.code (e.g. "TLSCertName") and .error.number; exit codes 0 ok,
#   69 unavailable, 75 tempfail, 76 protocol, 77 auth/TLS trust;
#   --transcript: protocol on stderr, client lines "->" (plain) / "~>" (TLS),
#   server lines "<-" / "<~".
# Interpretations made here:
#   * "TLS not used" in JSON is .tls == null (key present) or .tls_used == false;
#     "TLS used" is .tls_used == true or .tls a non-null, non-false value.
#   * "no AUTH in the transcript" means no client line ("->" or "~>") starting
#     with AUTH; secrets are searched for anywhere in stdout and stderr.
#   * The plain-text fallback warning is any stderr line matching (case-blind)
#     unencrypted|not encrypted|without (tls|encryption)|plain ?text|cleartext|
#     in the clear|insecure.
#   * Delivery is checked on the server side: the Maildir file ends with the
#     exact bytes sent (LF line endings), Postfix's Received header says
#     "using TLS" when TLS was expected (and not when it was not), and the
#     Postfix log's sasl_method for the message equals the mechanism asked for.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PEERS=$REPO/scripts/peers.sh

if [[ -n ${INTEROP_DIR:-} ]]; then
  W=$INTEROP_DIR
  TEMP_W=0
else
  W=$(mktemp -d /tmp/mailsec-interop.XXXXXX)
  TEMP_W=1
fi
mkdir -p "$W"
W=$(cd "$W" && pwd -P)
BIN=$W/bin/mailsec
LOGS=$W/logs
MSGS=$W/msgs
rm -rf "$LOGS" "$MSGS"
mkdir -p "$W/bin" "$LOGS" "$MSGS"
rm -f "$BIN"

PASSED=0
FAILED=0
PEERS_STARTED=0
EXTRA_CLEANUP=()

cleanup() {
  local rc=$? c
  for c in "${EXTRA_CLEANUP[@]}"; do eval "$c" >>"$LOGS/cleanup.log" 2>&1 || true; done
  if ((PEERS_STARTED)); then
    "$PEERS" stop "$W" >>"$LOGS/peers-stop.log" 2>&1 || echo "# warning: peers.sh stop failed, see $LOGS/peers-stop.log" >&2
  fi
  if ((TEMP_W)) && ((FAILED == 0)) && [[ ${INTEROP_KEEP:-0} != 1 ]] && ((rc == 0)); then
    rm -rf "$W"
  else
    echo "# work dir and logs kept in $W" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- check runner

# check NAME CMD...: run CMD in a subshell; PASS if it returns 0. A failing
# CMD gives its reason with "why", else the last line of its output is used.
check() {
  local name=$1 rc reason
  shift
  CHECK=$name
  : >"$LOGS/$name.reason"
  ("$@") >"$LOGS/$name.log" 2>&1
  rc=$?
  if ((rc == 0)); then
    echo "PASS $name"
    PASSED=$((PASSED + 1))
  else
    reason=$(tr '\n' ' ' <"$LOGS/$name.reason" | sed 's/ *$//')
    [[ -n $reason ]] || reason="exit $rc: $(tail -n 1 "$LOGS/$name.log")"
    echo "FAIL $name: ${reason:0:400}"
    FAILED=$((FAILED + 1))
  fi
}

skip() { echo "SKIP $1: $2"; }

# why REASON: record why the current check failed, and fail
why() {
  printf '%s\n' "$*" >>"$LOGS/$CHECK.reason"
  return 1
}

# ---------------------------------------------------------------- messages

NSEQ=0
# newid: a unique Message-ID (without <>)
newid() {
  NSEQ=$((NSEQ + 1))
  printf 'interop-%s-%s-%s.%s@%s' "$CHECK" "$NSEQ" "$$" "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" "${MAIL_DOMAIN:-example.test}"
}

# mkmsg FILE ID KIND: write a message with LF line endings. Every header
# Postfix could otherwise add (Date, Message-ID, From, To) is present.
mkmsg() {
  local f=$1 id=$2 kind=$3 cte=7bit
  [[ $kind == utf8 ]] && cte=8bit
  {
    printf 'From: Interop Sender <%s>\n' "${MKMSG_FROM:-sender@$MAIL_DOMAIN}"
    printf 'To: Alice <%s>\n' "$ALICE_ADDR"
    printf 'Subject: mailsec interop %s %s\n' "$CHECK" "$kind"
    printf 'Date: %s\n' "$(LC_ALL=C date -R)"
    printf 'Message-ID: <%s>\n' "$id"
    printf 'MIME-Version: 1.0\n'
    printf 'Content-Type: text/plain; charset=utf-8\n'
    printf 'Content-Transfer-Encoding: %s\n' "$cte"
    printf '\n'
    case $kind in
      random)
        printf 'Random body for %s:\n' "$id"
        head -c 600 /dev/urandom | base64 -w 60
        printf 'end\n' ;;
      dots)
        printf 'Lines starting with dots follow.\n'
        printf '.\n'
        printf '..\n'
        printf '...\n'
        printf '.leading dot\n'
        printf '..two leading dots\n'
        printf ' .\n'
        printf '. \n'
        printf '.\t\n'
        printf 'text\n.\ntext after a lone dot\n'
        printf '\n.\n\n'
        printf '.\n' ;; # the last line is a lone dot too
      utf8)
        printf 'Grüße aus Köln – “quotes” – naïve café\n'
        printf 'Ελληνικά, Русский, 日本語のテキスト, 한국어, עברית, العربية\n'
        printf 'Emoji: 📬✉️🔒 and a NBSP:\xc2\xa0here; Latin-1-looking bytes in UTF-8: \xc3\xa9\xc3\xa8\n'
        printf 'Line with only 8-bit: ÿþýüûúùø\n' ;;
      longline)
        printf 'A line of exactly 998 characters follows.\n'
        head -c 998 /dev/zero | tr '\0' 'L'
        printf '\n'
        printf '.%s\n' "$(head -c 997 /dev/zero | tr '\0' 'D')"
        printf 'end\n' ;;
      big)
        # 3932160 random bytes -> 5 MiB of base64 text in 76-character lines.
        head -c 3932160 /dev/urandom | base64 -w 76
        printf 'end of big message\n' ;;
      *) echo "mkmsg: unknown kind $kind" >&2; return 1 ;;
    esac
  } >"$f"
}

# ---------------------------------------------------------------- a section's own Postfix

# private_postfix DIR NAME LISTENER...: start a Postfix of a section's own,
# with config, queue and data below DIR, never the shared peers' instance.
# main.cf gets the settings common to such instances (nothing local, no DNS,
# relaying only from loopback) plus the lines read from stdin; master.cf is
# the stock service table without chroot and without the port 25 listener,
# plus one smtpd per LISTENER ("HOST:PORT" then any "-o name=value"). Returns
# once every listener accepts. The caller registers the stop with on_exit
# (check runs in a subshell): postfix -c DIR/etc stop.
private_postfix() {
  local dir=$1 name=$2 etc=$1/etc l addr opts
  shift 2
  [[ -e $dir/spool/pid/master.pid ]] && postfix -c "$etc" stop >/dev/null 2>&1
  rm -rf "$dir"
  mkdir -p "$etc" "$dir/spool" "$dir/data"
  {
    cat <<EOF
compatibility_level = 3.6
config_directory = $etc
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $W
syslog_name = postfix-mailsec-$name
mydestination =
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
EOF
    cat
  } >"$etc/main.cf"
  cp /usr/share/postfix/master.cf.dist "$etc/master.cf"
  postconf -c "$etc" -M# smtp/inet
  postconf -c "$etc" -F "*/*/chroot = n"
  for l in "$@"; do
    addr=${l%% *} opts=
    [[ $l == *" "* ]] && opts=${l#* }
    postconf -c "$etc" -Me "$addr/inet = $addr inet n - n - - smtpd $opts"
  done
  chmod 644 "$etc"/*
  # Postfix (user postfix) must reach its queue below $W, which mktemp made
  # 0700: traversal only.
  chmod o+x "$W"
  postfix -c "$etc" set-permissions >"$dir/setperm.log" 2>&1 || why "postfix set-permissions: $(tail -n 2 "$dir/setperm.log")" || return 1
  postfix -c "$etc" start >"$dir/start.log" 2>&1 || why "private postfix did not start: $(tail -n 2 "$dir/start.log")" || return 1
  for l in "$@"; do
    addr=${l%% *}
    wait_port "${addr%:*}" "${addr##*:}" 50 0.2 ||
      why "private postfix does not listen on $addr: $(tail -n 2 "$dir/maillog" 2>/dev/null)" || return 1
  done
}

# port_open HOST PORT: something accepts TCP connections on HOST:PORT
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port HOST PORT TRIES DELAY: wait until port_open, trying TRIES times
# DELAY seconds apart
wait_port() {
  local i
  for ((i = 0; i < $3; i++)); do
    port_open "$1" "$2" && return 0
    sleep "$4"
  done
  return 1
}

# ---------------------------------------------------------------- a section's own processes

# serve_start DIR HOST PORT: start `mailsec serve --config DIR/serve.toml`
# in the background (pid in DIR/pid, stdout appended to DIR/banner.txt,
# stderr to DIR/serve.log; the caller's environment is passed on) and wait
# up to 15 s until HOST:PORT accepts connections
serve_start() {
  local dir=$1 i pid
  "$BIN" serve --config "$dir/serve.toml" >>"$dir/banner.txt" 2>>"$dir/serve.log" &
  pid=$!
  disown "$pid" # no "Killed" job notices in the check's log
  echo "$pid" >"$dir/pid"
  for ((i = 0; i < 150; i++)); do
    port_open "$2" "$3" && return 0
    kill -0 "$pid" 2>/dev/null || why "mailsec serve ($dir) exited: $(tail -n 3 "$dir/serve.log" | tr '\n' ' ')" || return 1
    sleep 0.1
  done
  why "mailsec serve ($dir) does not listen on $2:$3 within 15s: $(tail -n 3 "$dir/serve.log" | tr '\n' ' ')"
}

# stop_pidfile DIR [SIGNAL [SECONDS]]: send SIGNAL (default TERM) to the
# process of DIR/pid, wait up to SECONDS (default 10) for it to exit, then
# SIGKILL it; empties DIR/pid
stop_pidfile() {
  local dir=$1 sig=${2:-TERM} secs=${3:-10} pid i
  pid=$(cat "$dir/pid" 2>/dev/null) || return 0
  [[ -n $pid ]] || return 0
  kill "-$sig" "$pid" 2>/dev/null
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null; sleep 0.2; }
  : >"$dir/pid"
  return 0
}

# kill_pidfiles FILE...: SIGTERM the processes named in the pid FILEs, then
# SIGKILL what is left half a second later (a section's on_exit cleanup;
# it reads the files at exit, so processes started inside checks, which
# run in subshells, are covered too)
kill_pidfiles() {
  local sig f p
  for sig in TERM KILL; do
    for f in "$@"; do
      [[ -r $f ]] || continue
      p=$(cat "$f")
      [[ -n $p ]] && kill "-$sig" "$p" 2>/dev/null
    done
    [[ $sig == KILL ]] || sleep 0.5
  done
  return 0
}

# relay_msg FILE FROM TO ID: a short message (LF line ends) with
# Message-ID ID, as the relay sections submit it
relay_msg() {
  {
    printf 'From: %s\nTo: %s\nSubject: mailsec relay interop %s\n' "$2" "$3" "$CHECK"
    printf 'Date: %s\nMessage-ID: <%s>\n' "$(LC_ALL=C date -R)" "$4"
    printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n'
    printf 'Relayed by mailsec serve (%s).\n' "$CHECK"
  } >"$1"
}

# relay_submit HOST:PORT PASS CA FROM TO MSG OUT [ARGS...]: mailsec send
# MSG as alice (STARTTLS checked against CA for the name localhost, AUTH
# PLAIN with PASS) to a section's own `mailsec serve`; JSON in OUT, stderr
# in OUT.stderr; returns mailsec's exit status. The command is logged in
# $LOGS/$CHECK.cmd.
relay_submit() {
  local server=$1 pass=$2 ca=$3 from=$4 to=$5 msg=$6 out=$7
  shift 7
  printf 'mailsec send --server %s --to %s %s < %s\n' "$server" "$to" "$*" "$msg" >>"$LOGS/$CHECK.cmd"
  MAILSEC_PASSWORD=$pass timeout 60 "$BIN" send --server "$server" --tls starttls \
    --auth plain --user alice --ca-file "$ca" --tls-server-name localhost --timeout 20s \
    --from "$from" --to "$to" --json "$@" <"$msg" >"$out" 2>"$out.stderr"
}

# submit_failed RC TO SERVER OUT: why a relay_submit was not acknowledged
submit_failed() {
  why "mailsec send to $2 through $3: exit $1: $(jq -r '.error.code // empty' "$4" 2>/dev/null) $(tail -n 1 "$4.stderr")"
}

# queue_json DATA ARGS...: mailsec queue ARGS --data DATA --json; stdout in
# the file $Q (= $LOGS/$CHECK.queue.json), stderr in $Q.stderr
queue_json() {
  local data=$1
  shift
  Q=$LOGS/$CHECK.queue.json
  timeout 30 "$BIN" queue "$@" --data "$data" --json >"$Q" 2>"$Q.stderr"
}

# queue_entry DATA RCPT: the `queue list` entry (JSON) whose recipients
# include RCPT
queue_entry() {
  queue_json "$1" list || return 1
  jq -ce --arg r "$2" '.messages[] | select(.recipients | index($r))' "$Q" 2>/dev/null | head -n 1
}

# ---------------------------------------------------------------- running clients

need_bin() {
  [[ -x $BIN ]] || why "mailsec binary not built (see FAIL build)"
}

# ms MSGFILE ARGS...: run mailsec send with the message on stdin and
# MAILSEC_PASSWORD set to alice's password (unless MS_NOPASS=1). Sets MS_RC,
# MS_OUT (stdout file), MS_ERR (stderr file).
ms() {
  local msg=$1
  shift
  MS_OUT=$LOGS/$CHECK.stdout
  MS_ERR=$LOGS/$CHECK.stderr
  printf 'mailsec send' >"$LOGS/$CHECK.cmd"
  printf ' %q' "$@" >>"$LOGS/$CHECK.cmd"
  printf ' < %q\n' "$msg" >>"$LOGS/$CHECK.cmd"
  if [[ ${MS_NOPASS:-0} == 1 ]]; then
    env -u MAILSEC_PASSWORD timeout 60 "$BIN" send "$@" <"$msg" >"$MS_OUT" 2>"$MS_ERR"
  else
    MAILSEC_PASSWORD=$ALICE_PASS timeout 60 "$BIN" send "$@" <"$msg" >"$MS_OUT" 2>"$MS_ERR"
  fi
  MS_RC=$?
  if ((MS_RC == 124)); then
    why "mailsec timed out after 60s"
    return 1
  fi
  return 0
}

# ms_summary: the JSON error code, or the last stderr line
ms_summary() {
  local code
  code=$(jq -r '.error.code // empty' "$MS_OUT" 2>/dev/null)
  if [[ -n $code ]]; then
    printf 'error.code=%s' "$code"
  else
    printf '%s' "$(tail -n 1 "$MS_ERR" 2>/dev/null | cut -c1-200)"
  fi
}

# json_code: .error.code from MS_OUT ("" if none or not JSON)
json_code() { jq -r '.error.code // empty' "$MS_OUT" 2>/dev/null; }

json_valid() { jq -e 'type == "object"' "$MS_OUT" >/dev/null 2>&1; }

# ref MSGFILE PORT TLS AUTH: send with the reference client msmtp
ref() {
  local msg=$1 port=$2 tls=$3 auth=$4 opts=()
  MS_OUT=$LOGS/$CHECK.stdout
  MS_ERR=$LOGS/$CHECK.stderr
  case $tls in
    starttls) opts+=(--tls=on --tls-starttls=on) ;;
    implicit) opts+=(--tls=on --tls-starttls=off) ;;
    none) opts+=(--tls=off) ;;
  esac
  case $auth in
    none) opts+=(--auth=off) ;;
    auto) opts+=(--auth=on) ;;
    *) opts+=(--auth="$auth") ;;
  esac
  : >"$W/msmtprc"
  chmod 600 "$W/msmtprc"
  MAILSEC_PASSWORD=$ALICE_PASS timeout 60 msmtp -C "$W/msmtprc" --host="$PEERS_HOST" --port="$port" \
    "${opts[@]}" --tls-trust-file="$CA_PEM" --user="$ALICE_USER" \
    --passwordeval='printf %s "$MAILSEC_PASSWORD"' --domain=client.example.test \
    --from="sender@$MAIL_DOMAIN" -- "$ALICE_ADDR" <"$msg" >"$MS_OUT" 2>"$MS_ERR"
  MS_RC=$?
  return 0
}

# ---------------------------------------------------------------- server-side evidence

# wait_mail_with MAILDIR TEXT SECONDS: print the first file of MAILDIR
# (new/ or cur/) containing TEXT, waiting up to SECONDS for one
wait_mail_with() {
  local dir=$1 text=$2 i f
  for ((i = 0; i < $3 * 5; i++)); do
    f=$(grep -rlF -- "$text" "$dir/new" "$dir/cur" 2>/dev/null | head -n 1)
    if [[ -n $f ]]; then
      echo "$f"
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# wait_maildir MAILDIR ID SECONDS: print the file of MAILDIR holding
# Message-ID ID, waiting up to SECONDS for it (sections use it for their own
# servers' Maildirs too)
wait_maildir() { wait_mail_with "$1" "Message-ID: <$2>" "$3"; }

# wait_delivered ID SECONDS: print the Maildir file of alice holding ID
wait_delivered() { wait_maildir "$ALICE_MAILDIR" "$@"; }

# digests DIR...: sorted SHA-256 sums of the regular files in DIRs, to
# compare sets of messages byte for byte whatever their file names
digests() { find "$@" -type f -exec sha256sum {} + | awk '{print $1}' | sort; }

# same_tail DELIVERED SENT: DELIVERED ends with exactly the bytes of SENT
same_tail() {
  local n
  n=$(stat -c %s "$2")
  [[ $(stat -c %s "$1") -ge $n ]] || return 1
  tail -c "$n" "$1" | cmp -s - "$2"
}

# headers FILE: the header block (up to the first empty line), unfolded
headers() { sed '/^$/q' "$1" | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n[ \t]\+/ /g'; }

# first_received FILE: the Received header Postfix added (the topmost one)
first_received() { headers "$1" | grep -m1 '^Received:'; }

# sasl_method ID: the SASL mechanism Postfix logged for the message
sasl_method() {
  local id=$1 qid i line
  for ((i = 0; i < 25; i++)); do
    qid=$(grep -F "message-id=<$id>" "$POSTFIX_LOG" | sed -n 's/.*: \([0-9A-F]\{6,\}\): message-id=.*/\1/p' | tail -n 1)
    if [[ -n $qid ]]; then
      line=$(grep -F "$qid: client=" "$POSTFIX_LOG" | tail -n 1)
      if [[ -n $line ]]; then
        sed -n 's/.*sasl_method=\([^,]*\).*/\1/p' <<<"$line"
        return 0
      fi
    fi
    sleep 0.2
  done
  return 1
}

# diff_hint DELIVERED SENT: where the bytes first differ
diff_hint() {
  local n off
  n=$(stat -c %s "$2")
  off=$(tail -c "$n" "$1" | cmp - "$2" 2>&1 | head -n 1)
  printf 'sent %s bytes, delivered file %s bytes; %s' "$n" "$(stat -c %s "$1")" "$off"
}

# ---------------------------------------------------------------- check bodies

# t_deliver CLIENT PORT TLS AUTH KIND [EXTRA ARGS...]: send a KIND message as
# alice and verify it arrived byte-identical, over TLS iff TLS != none (or
# "optional-plain"/"optional-tls" for starttls-optional), with mechanism AUTH.
t_deliver() {
  local client=$1 port=$2 tls=$3 auth=$4 kind=$5
  shift 5
  local id msg f m expect_tls=1 tlsarg=$tls
  case $tls in
    none) expect_tls=0 ;;
    optional-plain) expect_tls=0; tlsarg=starttls-optional ;;
    optional-tls) tlsarg=starttls-optional ;;
  esac
  id=$(newid)
  msg=$MSGS/$CHECK.eml
  mkmsg "$msg" "$id" "$kind" || { why "cannot build message"; return 1; }
  if [[ $client == mailsec ]]; then
    need_bin || return 1
    ms "$msg" --server "$PEERS_HOST:$port" --tls "$tlsarg" --auth "$auth" --user "$ALICE_USER" \
      --ca-file "$CA_PEM" --tls-server-name "$TLS_SERVER_NAME" \
      --from "sender@$MAIL_DOMAIN" --to "$ALICE_ADDR" --json "$@" || return 1
    ((MS_RC == 0)) || why "exit $MS_RC, want 0: $(ms_summary)" || return 1
    json_valid || why "stdout is not one JSON object: $(head -c 200 "$MS_OUT")" || return 1
  else
    ref "$msg" "$port" "$tls" "$auth"
    ((MS_RC == 0)) || why "msmtp exit $MS_RC: $(tail -n 1 "$MS_ERR")" || return 1
  fi
  local wait=10
  [[ $kind == big ]] && wait=40
  f=$(wait_delivered "$id" "$wait") || why "no file with Message-ID <$id> in $ALICE_MAILDIR within ${wait}s" || return 1
  same_tail "$f" "$msg" || why "delivered bytes differ from sent: $(diff_hint "$f" "$msg")" || return 1
  local rcvd
  rcvd=$(first_received "$f")
  if ((expect_tls)); then
    [[ $rcvd == *"using TLS"* ]] || why "Postfix Received header shows no TLS: ${rcvd:0:200}" || return 1
  else
    [[ $rcvd != *"using TLS"* ]] || why "Postfix Received header shows TLS, expected plain: ${rcvd:0:200}" || return 1
  fi
  case $auth in
    none)
      m=$(sasl_method "$id") || true
      [[ -z $m ]] || why "authenticated with $m although --auth none" || return 1 ;;
    auto)
      m=$(sasl_method "$id") || true
      [[ -n $m ]] || why "Postfix logged no sasl_method for the message" || return 1
      echo "auto picked $m" ;;
    *)
      m=$(sasl_method "$id") || why "Postfix logged no sasl_method for <$id>" || return 1
      [[ ${m,,} == "${auth,,}" ]] || why "server saw sasl_method=$m, want ${auth^^}" || return 1 ;;
  esac
  [[ $client == mailsec ]] || return 0
  if [[ $tls == optional-plain ]]; then
    jq -e '(.tls_used == false) or (has("tls") and .tls == null)' "$MS_OUT" >/dev/null ||
      why "JSON does not say TLS was unused (want .tls == null or .tls_used == false): $(head -c 200 "$MS_OUT")" || return 1
    grep -Eiq 'unencrypted|not encrypted|without (tls|encryption)|plain ?text|cleartext|in the clear|insecure' "$MS_ERR" ||
      why "no warning on stderr that the mail went unencrypted" || return 1
  elif [[ $tls == optional-tls ]]; then
    jq -e '(.tls_used == true) or (has("tls") and .tls != null and .tls != false)' "$MS_OUT" >/dev/null ||
      why "JSON does not say TLS was used (want .tls_used == true or .tls non-null): $(head -c 200 "$MS_OUT")" || return 1
  fi
  return 0
}

# secrets_absent FILE...: neither alice's password nor the base64 forms a
# PLAIN or LOGIN exchange would carry appear in FILEs
secrets_absent() {
  local s pat=()
  pat+=("$ALICE_PASS")
  pat+=("$(printf '%s' "$ALICE_PASS" | base64 -w0)")
  pat+=("$(printf '\0%s\0%s' "$ALICE_USER" "$ALICE_PASS" | base64 -w0)")
  pat+=("$(printf '%s\0%s\0%s' "$ALICE_USER" "$ALICE_USER" "$ALICE_PASS" | base64 -w0)")
  pat+=("$(printf '\0%s\0%s' "$ALICE_ADDR" "$ALICE_PASS" | base64 -w0)")
  for s in "${pat[@]}"; do
    if grep -qF -- "$s" "$@"; then
      why "output contains a secret (${s:0:6}...)"
      return 1
    fi
  done
  return 0
}

# client_lines FILE: transcript lines the client sent
client_lines() { grep -E '^[[:space:]]*(->|~>)' "$1"; }

# t_no_secret_transcript AUTH: successful AUTH with --transcript leaks nothing
t_no_secret_transcript() {
  local auth=$1 id msg f
  need_bin || return 1
  id=$(newid)
  msg=$MSGS/$CHECK.eml
  mkmsg "$msg" "$id" random || { why "cannot build message"; return 1; }
  ms "$msg" --server "$PEERS_HOST:$SMTP_SUBMISSION_PORT" --tls starttls --auth "$auth" --user "$ALICE_USER" \
    --ca-file "$CA_PEM" --tls-server-name "$TLS_SERVER_NAME" \
    --from "sender@$MAIL_DOMAIN" --to "$ALICE_ADDR" --json --transcript || return 1
  ((MS_RC == 0)) || why "exit $MS_RC, want 0: $(ms_summary)" || return 1
  client_lines "$MS_ERR" | grep -Eq '~>' || why "no TLS client lines (~>) in the --transcript output on stderr" || return 1
  client_lines "$MS_ERR" | grep -Eiq '~>[[:space:]]*AUTH' || why "transcript shows no AUTH command" || return 1
  secrets_absent "$MS_ERR" "$MS_OUT" || return 1
  f=$(wait_delivered "$id" 10) || why "not delivered" || return 1
  same_tail "$f" "$msg" || why "delivered bytes differ: $(diff_hint "$f" "$msg")"
}

# t_tls_fail PORT TLS CAFILE SERVERNAME WANTCODE: TLS trust failure, exit 77,
# no AUTH attempted, nothing leaked, nothing delivered
t_tls_fail() {
  local port=$1 tls=$2 ca=$3 name=$4 want=$5 id msg code f
  need_bin || return 1
  id=$(newid)
  msg=$MSGS/$CHECK.eml
  mkmsg "$msg" "$id" random || { why "cannot build message"; return 1; }
  ms "$msg" --server "$PEERS_HOST:$port" --tls "$tls" --auth plain --user "$ALICE_USER" \
    --ca-file "$ca" --tls-server-name "$name" \
    --from "sender@$MAIL_DOMAIN" --to "$ALICE_ADDR" --json --transcript || return 1
  code=$(json_code)
  ((MS_RC == 77)) || why "exit $MS_RC, want 77 ($(ms_summary))" || return 1
  [[ $code == "$want" ]] || why "error.code '$code', want $want" || return 1
  ! client_lines "$MS_ERR" | grep -Eiq '(->|~>)[[:space:]]*(AUTH|MAIL FROM)' || why "client sent AUTH/MAIL after a TLS failure" || return 1
  secrets_absent "$MS_ERR" "$MS_OUT" || return 1
  if f=$(wait_delivered "$id" 1); then why "message was delivered anyway: $f"; return 1; fi
  return 0
}

# t_starttls_absent: --tls starttls against a server without STARTTLS
t_starttls_absent() {
  local id msg code
  need_bin || return 1
  id=$(newid)
  msg=$MSGS/$CHECK.eml
  mkmsg "$msg" "$id" random || { why "cannot build message"; return 1; }
  ms "$msg" --server "$PEERS_HOST:$SMTP_PLAIN_PORT" --tls starttls --auth plain --user "$ALICE_USER" \
    --ca-file "$CA_PEM" --tls-server-name "$TLS_SERVER_NAME" \
    --from "sender@$MAIL_DOMAIN" --to "$ALICE_ADDR" --json --transcript || return 1
  code=$(json_code)
  ((MS_RC == 69)) || why "exit $MS_RC, want 69 ($(ms_summary))" || return 1
  [[ $code == StartTLSUnavailable ]] || why "error.code '$code', want StartTLSUnavailable" || return 1
  client_lines "$MS_ERR" | grep -Eq '\->' || why "no client lines (->) in the --transcript output on stderr" || return 1
  ! client_lines "$MS_ERR" | grep -Eiq '(->|~>)[[:space:]]*AUTH' || why "client sent AUTH without TLS" || return 1
  ! client_lines "$MS_ERR" | grep -Eiq '(->|~>)[[:space:]]*(MAIL FROM|DATA|BDAT)' || why "client sent the mail without TLS" || return 1
  secrets_absent "$MS_ERR" "$MS_OUT" || return 1
  if wait_delivered "$id" 1 >/dev/null; then why "message was delivered in plain text"; return 1; fi
  return 0
}

# ---------------------------------------------------------------- main

echo "# mailsec interop: work dir $W"

build() {
  if [[ -n ${INTEROP_MAILSEC:-} ]]; then
    [[ -x $INTEROP_MAILSEC ]] || why "INTEROP_MAILSEC=$INTEROP_MAILSEC is not executable" || return 1
    ln -sf "$(cd "$(dirname "$INTEROP_MAILSEC")" && pwd -P)/$(basename "$INTEROP_MAILSEC")" "$BIN"
    echo "using $INTEROP_MAILSEC instead of building"
    return 0
  fi
  command -v go >/dev/null || why "go not found in PATH" || return 1
  if ! (cd "$REPO" && go build -o "$BIN" ./cmd/mailsec) >"$LOGS/build.out" 2>&1; then
    why "go build ./cmd/mailsec failed: $(grep -v '^#' "$LOGS/build.out" | head -n 3 | tr '\n' ' ') (full output: $LOGS/build.out)"
    return 1
  fi
}
check build build

start_peers() {
  "$PEERS" start "$W" >"$LOGS/peers-start.log" 2>&1 ||
    why "scripts/peers.sh start failed: $(grep -v '^[A-Z_]*=' "$LOGS/peers-start.log" | tail -n 3 | tr '\n' ' ')"
}
# INTEROP_PEERS=DIR uses peers already started with "scripts/peers.sh start
# DIR" and leaves them running (several runs can then share one instance).
PEERS_ENV=$W/env
if [[ -n ${INTEROP_PEERS:-} ]]; then
  PEERS_ENV=$INTEROP_PEERS/env
else
  PEERS_STARTED=1 # stop them at exit even if start failed half-way
  check peers start_peers
fi
if [[ ! -r $PEERS_ENV ]]; then
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi
# shellcheck disable=SC1091
source "$PEERS_ENV"
command -v jq >/dev/null || { echo "FAIL jq: not installed"; FAILED=$((FAILED + 1)); }

MECHS=(plain login cram-md5 scram-sha-1 scram-sha-256)
if [[ " $SASL_MECHS " == *" ntlm "* ]]; then
  MECHS+=(ntlm)
fi

# want SECTION: true if INTEROP_SECTIONS is unset or names SECTION
want() { [[ -z ${INTEROP_SECTIONS:-} || " $INTEROP_SECTIONS " == *" $1 "* ]]; }

if want smtp; then
# Reference client: proves the peers and the checks themselves are sound.
if [[ ${INTEROP_REF:-1} != 0 ]]; then
  for mech in "${MECHS[@]}"; do
    check "ref-msmtp-starttls-$mech" t_deliver msmtp "$SMTP_SUBMISSION_PORT" starttls "$mech" random
  done
  check ref-msmtp-smtps-plain t_deliver msmtp "$SMTP_SMTPS_PORT" implicit plain random
  check ref-msmtp-dots t_deliver msmtp "$SMTP_SUBMISSION_PORT" starttls plain dots
  check ref-msmtp-utf8 t_deliver msmtp "$SMTP_SUBMISSION_PORT" starttls plain utf8
  check ref-msmtp-longline t_deliver msmtp "$SMTP_SUBMISSION_PORT" starttls plain longline
  check ref-msmtp-plain-port t_deliver msmtp "$SMTP_PLAIN_PORT" none none random
fi
[[ " $SASL_MECHS " == *" ntlm "* ]] || skip starttls-ntlm "Dovecot $DOVECOT_VERSION here does not offer NTLM"

# a. every mechanism over STARTTLS (and auto), PLAIN and SCRAM over implicit TLS
for mech in "${MECHS[@]}" auto; do
  check "starttls-$mech" t_deliver mailsec "$SMTP_SUBMISSION_PORT" starttls "$mech" random
done
check smtps-plain t_deliver mailsec "$SMTP_SMTPS_PORT" implicit plain random
check smtps-scram-sha-256 t_deliver mailsec "$SMTP_SMTPS_PORT" implicit scram-sha-256 random

# b. transparency
check data-dots t_deliver mailsec "$SMTP_SUBMISSION_PORT" starttls plain dots
check data-utf8-8bit t_deliver mailsec "$SMTP_SUBMISSION_PORT" starttls plain utf8
check data-998-char-line t_deliver mailsec "$SMTP_SUBMISSION_PORT" starttls plain longline
check data-5mib t_deliver mailsec "$SMTP_SUBMISSION_PORT" starttls plain big
check data-5mib-smtps t_deliver mailsec "$SMTP_SMTPS_PORT" implicit scram-sha-256 big

# c. certificate trust and name
check tls-wrong-ca-starttls t_tls_fail "$SMTP_SUBMISSION_PORT" starttls "$OTHER_CA_PEM" "$TLS_SERVER_NAME" TLSCertificate
check tls-wrong-ca-implicit t_tls_fail "$SMTP_SMTPS_PORT" implicit "$OTHER_CA_PEM" "$TLS_SERVER_NAME" TLSCertificate
check tls-wrong-name-starttls t_tls_fail "$SMTP_SUBMISSION_PORT" starttls "$CA_PEM" wrong.example TLSCertName
check tls-wrong-name-implicit t_tls_fail "$SMTP_SMTPS_PORT" implicit "$CA_PEM" wrong.example TLSCertName

# d. STARTTLS required but not offered: no AUTH, no credentials, exit 69
check starttls-absent-refuses t_starttls_absent

# e. opportunistic STARTTLS against a server without it: plain delivery + warning
check starttls-optional-falls-back-to-plain t_deliver mailsec "$SMTP_PLAIN_PORT" optional-plain none random

# f. opportunistic STARTTLS against a server with it: TLS used
check starttls-optional-upgrades t_deliver mailsec "$SMTP_MX_PORT" optional-tls none random

# h. a refused recipient, its data already pipelined behind BDAT: the RCPT
# reply is the error, nothing is delivered, the exit says unavailable
t_rcpt_refused() {
  local msg=$MSGS/$CHECK.eml id
  id=$(newid)
  mkmsg "$msg" "$id" random || return 1
  need_bin || return 1
  ms "$msg" --server "$PEERS_HOST:$SMTP_SUBMISSION_PORT" --auth plain --user "$ALICE_USER" \
    --ca-file "$CA_PEM" --tls-server-name "$TLS_SERVER_NAME" \
    --from "sender@$MAIL_DOMAIN" --to "nobody@$MAIL_DOMAIN" --json --transcript || return 1
  ((MS_RC == 69)) || why "exit $MS_RC, want 69: $(ms_summary)" || return 1
  [[ $(jq -r '.error.reply.code' "$MS_OUT") == 550 ]] || why "error reply $(jq -c .error.reply "$MS_OUT"), want the RCPT's 550" || return 1
  [[ $(jq -r '.recipients[0].ok' "$MS_OUT") == false ]] || why "recipient not marked refused: $(jq -c .recipients "$MS_OUT")" || return 1
  grep -q '^~> BDAT [0-9]* LAST' "$MS_ERR" || why "no pipelined BDAT LAST in the transcript (does Postfix offer CHUNKING?)" || return 1
  ! wait_delivered "$id" 2 >/dev/null || why "the message was delivered"
}
check rcpt-refused-pipelined-bdat t_rcpt_refused

# g. transcripts never carry the secret
check transcript-no-secret-plain t_no_secret_transcript plain
check transcript-no-secret-login t_no_secret_transcript login
fi

# Further sections, one file each: they use check, skip, why, mkmsg, newid,
# wait_maildir, wait_port, digests, private_postfix, $BIN, $W, $LOGS, $MSGS
# and the peers' env file, and start any extra peer they need themselves (on
# loopback high ports, stopped by their own trap helper on_exit).
on_exit() { EXTRA_CLEANUP+=("$*"); }
for f in "$REPO"/scripts/interop.d/*.sh; do
  [[ -e $f ]] || continue
  sec=$(basename "$f" .sh)
  want "$sec" || continue
  echo "# section $sec"
  # shellcheck disable=SC1090
  source "$f"
done

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
