# Interop section "serve": real clients against `mailsec serve` ($BIN).
# Sourced by scripts/interop.sh (see there for check/why/skip/mkmsg/newid).
#
# Starts `mailsec serve` with its own config on loopback ports 12025 (MX,
# STARTTLS required), 12587 (submission), 12465 (SMTPS), 12110 (POP3 with
# STLS), 12995 (POP3S) and metrics on 12900, and a private Postfix on 12026
# that relays to it (own config_directory and queue_directory under $W; the
# shared Postfix is never touched). Every message sent is compared with what
# arrived in the Maildir (line ends aside: SMTP sends CRLF) and every
# message fetched with the Maildir file byte for byte.

SV_DIR=$W/serve
SV_DATA=$SV_DIR/data
SV_DOMAIN=mailsec.test
SV_HOST=127.0.0.1
SV_MX=12025 SV_SUB=12587 SV_SMTPS=12465 SV_POP3=12110 SV_POP3S=12995 SV_METRICS=12900 SV_POSTFIX=12026
SV_ALICE_PASS='sv-Al1ce pass!'
SV_BOB_PASS='sv-b0b'
SV_CA=$SV_DATA/tls/ca.pem
SV_PID=

sv_start() {
  # A leftover Postfix of an interrupted run in the same work dir.
  [[ -e $SV_DIR/postfix/spool/pid/master.pid ]] && postfix -c "$SV_DIR/postfix/etc" stop >/dev/null 2>&1
  rm -rf "$SV_DIR"
  mkdir -p "$SV_DIR"
  cat >"$SV_DIR/serve.toml" <<EOF
data_dir = "$SV_DATA"
hostname = "localhost"
domains = ["$SV_DOMAIN"]
metrics = "$SV_HOST:$SV_METRICS"

[limits]
auth_failure_delay = "100ms"

[[listener]]
name = "mx"
address = "$SV_HOST:$SV_MX"
kind = "mx"
tls = "require"

[[listener]]
name = "submission"
address = "$SV_HOST:$SV_SUB"
kind = "submission"

[[listener]]
name = "smtps"
address = "$SV_HOST:$SV_SMTPS"
kind = "smtps"

[[listener]]
name = "pop3"
address = "$SV_HOST:$SV_POP3"
kind = "pop3"

[[listener]]
name = "pop3s"
address = "$SV_HOST:$SV_POP3S"
kind = "pop3s"
EOF
  need_bin || return 1
  printf '%s' "$SV_ALICE_PASS" | "$BIN" users add alice --data "$SV_DATA" >"$LOGS/serve-users.log" 2>&1 ||
    why "users add alice: $(tail -n 1 "$LOGS/serve-users.log")" || return 1
  printf '%s' "$SV_BOB_PASS" | "$BIN" users add bob --data "$SV_DATA" >>"$LOGS/serve-users.log" 2>&1 ||
    why "users add bob: $(tail -n 1 "$LOGS/serve-users.log")" || return 1
  "$BIN" serve --config "$SV_DIR/serve.toml" >"$SV_DIR/banner.txt" 2>"$SV_DIR/serve.log" &
  echo $! >"$SV_DIR/pid"
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q "Try it" "$SV_DIR/banner.txt" 2>/dev/null && break
    kill -0 "$(cat "$SV_DIR/pid")" 2>/dev/null || why "mailsec serve exited: $(tail -n 3 "$SV_DIR/serve.log")" || return 1
    sleep 0.1
  done
  grep -q "pop3s://$SV_HOST:$SV_POP3S" "$SV_DIR/banner.txt" || why "banner lacks the POP3S line: $(cat "$SV_DIR/banner.txt")" || return 1
  [[ -r $SV_CA ]] || why "no generated CA at $SV_CA"
}
check serve-start sv_start
SV_PID=$(cat "$SV_DIR/pid" 2>/dev/null)
[[ -n $SV_PID ]] && on_exit "kill -TERM $SV_PID; sleep 0.5"

# sv_msg KIND: a fresh message in $SV_MSG with Message-ID $SV_ID, From
# $SV_FROM (alice's own address: the sender rule refuses any other)
sv_msg() {
  SV_ID=$(newid)
  SV_MSG=$MSGS/$CHECK.eml
  MKMSG_FROM=${SV_FROM:-alice@$SV_DOMAIN} mkmsg "$SV_MSG" "$SV_ID" "$1"
}

# sv_file USER ID: the Maildir file holding Message-ID ID, waiting up to 15 s
sv_file() { wait_maildir "$SV_DATA/mail/$1" "$2" 15; }

# SV_FROM is the envelope sender the senders below use: alice's own
# address, since she may send as no other (the sender rule).
SV_FROM=alice@$SV_DOMAIN

# sv_arrived USER [EXTRA]: the message $SV_MSG arrived for USER, byte for
# byte (after the Return-Path, Delivered-To and Received header mailsec
# adds, and with CRLF line ends), followed by EXTRA: swaks sends one more
# CRLF before the end of data.
sv_arrived() {
  local f n
  f=$(sv_file "$1" "$SV_ID") || why "no Maildir file with Message-ID <$SV_ID> for $1" || return 1
  { sed 's/$/\r/' "$SV_MSG"; printf '%b' "${2:-}"; } >"$SV_MSG.crlf"
  n=$(stat -c %s "$SV_MSG.crlf")
  tail -c "$n" "$f" | cmp -s - "$SV_MSG.crlf" || why "delivered bytes differ from sent: $(tail -c "$n" "$f" | cmp - "$SV_MSG.crlf" 2>&1 | head -n 1)" || return 1
  sv_final "$f" "$SV_FROM" "$1@$SV_DOMAIN" || return 1
  sed -n 3p "$f" | grep -q '^Received: ' || why "no Received header below them" || return 1
  # RFC 8314 section 4.3: the TLS version and cipher are recorded.
  sed '/^\r$/q' "$f" | tr -d '\r\n' | grep -Eq 'TLS1\.[23]' || why "Received header does not name the TLS version"
}

# sv_final FILE FROM TO: FILE begins with the lines of the final delivery
# (RFC 5321 section 4.4): Return-Path: <FROM> and Delivered-To: TO.
sv_final() {
  local want
  want=$(printf 'Return-Path: <%s>\r\nDelivered-To: %s\r' "$2" "$3")
  [[ $(head -n 2 "$1") == "$want" ]] || why "delivered file does not begin with Return-Path <$2> and Delivered-To $3: $(head -n 2 "$1" | tr '\r\n' '  ')"
}

# t_swaks NAME PORT ARGS...: send with swaks as alice
t_swaks() {
  local port=$1
  shift
  sv_msg random || return 1
  timeout 60 swaks --server "$SV_HOST:$port" --tls-verify --tls-ca-path "$SV_CA" --tls-sni localhost \
    --from "$SV_FROM" --to "alice@$SV_DOMAIN" --data - "$@" <"$SV_MSG" >"$LOGS/$CHECK.swaks" 2>&1 ||
    why "swaks failed: $(grep -E '^ *(<~?|\*\*\*)' "$LOGS/$CHECK.swaks" | tail -n 2 | tr '\n' ' ')" || return 1
  sv_arrived alice '\r\n'
}
check serve-swaks-starttls-plain t_swaks "$SV_SUB" --tls --auth PLAIN --auth-user alice --auth-password "$SV_ALICE_PASS"
check serve-swaks-tls-on-connect-login t_swaks "$SV_SMTPS" --tls-on-connect --auth LOGIN --auth-user alice --auth-password "$SV_ALICE_PASS"
check serve-swaks-pipeline-mx t_swaks "$SV_MX" --tls --pipeline
check serve-swaks-pipeline-submission t_swaks "$SV_SUB" --tls --pipeline --auth PLAIN --auth-user alice --auth-password "$SV_ALICE_PASS"

t_msmtp() {
  local mech=$1
  sv_msg "$2" || return 1
  : >"$SV_DIR/msmtprc"
  chmod 600 "$SV_DIR/msmtprc"
  SV_PW=$SV_ALICE_PASS timeout 60 msmtp -C "$SV_DIR/msmtprc" --host="$SV_HOST" --port="$SV_SUB" --tls=on --tls-starttls=on \
    --tls-trust-file="$SV_CA" --auth="$mech" --user=alice --passwordeval='printf %s "$SV_PW"' \
    --domain=client.test --from="$SV_FROM" -- "alice@$SV_DOMAIN" <"$SV_MSG" >"$LOGS/$CHECK.msmtp" 2>&1 ||
    why "msmtp failed: $(tail -n 2 "$LOGS/$CHECK.msmtp" | tr '\n' ' ')" || return 1
  sv_arrived alice
}
check serve-msmtp-scram-sha-256 t_msmtp scram-sha-256 utf8
check serve-msmtp-plain-dots t_msmtp plain dots

# sv_sendmail: set up the binary under the name sendmail ($SV_SENDMAIL),
# which takes its server and credentials from the default account of
# $XDG_CONFIG_HOME/mailsec/config, as cron, PHP and git find it.
sv_sendmail() {
  local cfg=$SV_DIR/xdg/mailsec
  SV_SENDMAIL=$SV_DIR/bin/sendmail
  mkdir -p "$SV_DIR/bin" "$cfg"
  ln -sf "$BIN" "$SV_SENDMAIL"
  printf '%s' "$SV_ALICE_PASS" >"$SV_DIR/alice.pw"
  chmod 600 "$SV_DIR/alice.pw"
  printf '%s\n' "account default" "host $SV_HOST" "port $SV_SUB" "tls on" "tls_trust_file $SV_CA" \
    "tls_starttls on" "auth plain" "user alice" "passwordeval \"cat $SV_DIR/alice.pw\"" >"$cfg/config"
  chmod 600 "$cfg/config"
}

# t_sendmail_t: PHP's mail() as it runs its sendmail_path, "sendmail -t -i".
# The recipients come from To and Bcc; the Bcc field must not arrive.
t_sendmail_t() {
  local f
  sv_sendmail
  sv_msg dots || return 1
  sed -i -e "s/^To: .*/To: Alice <alice@$SV_DOMAIN>/" -e "s/^From: .*/From: Alice <alice@$SV_DOMAIN>/" "$SV_MSG"
  sed "/^To: /a Bcc: bob@$SV_DOMAIN" "$SV_MSG" >"$SV_MSG.in"
  XDG_CONFIG_HOME=$SV_DIR/xdg HOME=$SV_DIR timeout 60 "$SV_SENDMAIL" -t -i <"$SV_MSG.in" >"$LOGS/$CHECK.sendmail" 2>&1 ||
    why "sendmail -t -i failed: $(tail -n 2 "$LOGS/$CHECK.sendmail" | tr '\n' ' ')" || return 1
  sv_arrived alice || return 1
  f=$(sv_file bob "$SV_ID") || why "the Bcc recipient bob got nothing" || return 1
  if sed '/^\r$/q' "$f" | grep -qi '^Bcc:'; then why "the Bcc field arrived at bob"; fi
}
check serve-sendmail-t-i t_sendmail_t

# t_git_send_email: git send-email with the binary as its sendmail (it runs
# "sendmail -i RCPT..." with the patch on stdin, the sender in its From
# field); the patch arrives with its diff intact.
t_git_send_email() {
  local repo=$SV_DIR/gitrepo token f
  command -v git >/dev/null && git send-email --help >/dev/null 2>&1 || why "git send-email is not installed (Debian's git-email)" || return 1
  sv_sendmail
  token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  rm -rf "$repo" && git init -q "$repo" || return 1
  printf 'line one\n.\n..leading dots\n' >"$repo/notes.txt"
  git -C "$repo" add notes.txt &&
    git -C "$repo" -c user.name=Alice -c user.email="alice@$SV_DOMAIN" commit -q -m "interop $token" || return 1
  HOME=$SV_DIR XDG_CONFIG_HOME=$SV_DIR/xdg GIT_CONFIG_NOSYSTEM=1 GIT_COMMITTER_NAME=Alice GIT_COMMITTER_EMAIL="alice@$SV_DOMAIN" \
    GIT_AUTHOR_NAME=Alice GIT_AUTHOR_EMAIL="alice@$SV_DOMAIN" \
    timeout 60 git -C "$repo" send-email \
    --sendmail-cmd="$SV_SENDMAIL" --from="Alice <alice@$SV_DOMAIN>" --to="alice@$SV_DOMAIN" \
    --confirm=never --suppress-cc=all --no-validate --quiet -1 >"$LOGS/$CHECK.git" 2>&1 ||
    why "git send-email failed: $(tail -n 2 "$LOGS/$CHECK.git" | tr '\n' ' ')" || return 1
  f=$(wait_mail_with "$SV_DATA/mail/alice" "interop $token" 15) || why "no patch with subject token $token arrived" || return 1
  # Delivered with CRLF; the diff's added lines must be there whole.
  tr -d '\r' <"$f" | grep -qx '+\.' && tr -d '\r' <"$f" | grep -qx '+\.\.leading dots' ||
    why "the diff did not arrive intact" || return 1
  sv_final "$f" "alice@$SV_DOMAIN" "alice@$SV_DOMAIN"
}
check serve-git-send-email t_git_send_email

t_curl_smtp() {
  local url=$1
  sv_msg dots || return 1
  # curl sends the file as it is; --crlf makes the LF line ends CRLF.
  timeout 60 curl -sS --crlf --url "$url" --cacert "$SV_CA" --user "alice:$SV_ALICE_PASS" \
    --mail-from "$SV_FROM" --mail-rcpt "alice@$SV_DOMAIN" --upload-file "$SV_MSG" "${@:2}" >"$LOGS/$CHECK.curl" 2>&1 ||
    why "curl failed: $(tail -n 1 "$LOGS/$CHECK.curl")" || return 1
  sv_arrived alice
}
check serve-curl-smtp-ssl-reqd t_curl_smtp "smtp://localhost:$SV_SUB" --ssl-reqd
check serve-curl-smtps t_curl_smtp "smtps://localhost:$SV_SMTPS"

# t_smtplib PORT FROM [LOGIN]: send with Python's smtplib over STARTTLS
# from FROM ("" is the null sender), logged in as alice when LOGIN is set.
t_smtplib() {
  sv_msg utf8 || return 1
  SV_PW=$SV_ALICE_PASS SV_LOGIN=${3:-} timeout 60 python3 - "$SV_HOST" "$1" "$SV_CA" "$SV_MSG" "$SV_DOMAIN" "$2" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' ||
import os, smtplib, ssl, sys
host, port, ca, path, dom, sender = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
with smtplib.SMTP(host, int(port)) as s:
    s.ehlo("client.test")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    if os.environ["SV_LOGIN"]:
        s.login("alice", os.environ["SV_PW"])
    data = open(path, "rb").read().replace(b"\n", b"\r\n")
    s.sendmail(sender, ["alice@" + dom], data)
EOF
    why "smtplib failed: $(tail -n 1 "$LOGS/$CHECK.py")" || return 1
  SV_FROM=$2 sv_arrived alice
}
check serve-python-smtplib-starttls-login t_smtplib "$SV_SUB" "$SV_FROM" login
# The MX listener's final delivery, from the null sender: Return-Path: <>.
check serve-python-smtplib-mx-return-path t_smtplib "$SV_MX" ""

# The sender rule: alice may not send as another address, neither in the
# envelope (553 5.7.1 at MAIL FROM) nor in the From header (550 5.7.1 at
# the end of the data); nothing of it is stored.
t_sender_rule() {
  SV_ID=$(newid)
  SV_PW=$SV_ALICE_PASS timeout 60 python3 - "$SV_HOST" "$SV_SUB" "$SV_CA" "$SV_DOMAIN" "$SV_ID" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' || why "$(tail -n 1 "$LOGS/$CHECK.py")" || return 1
import os, smtplib, ssl, sys
host, port, ca, dom, mid = sys.argv[1:]
with smtplib.SMTP(host, int(port)) as s:
    s.ehlo("client.test")
    s.starttls(context=ssl.create_default_context(cafile=ca))
    s.ehlo("client.test")
    s.login("alice", os.environ["SV_PW"])
    code, text = s.mail("ceo@" + dom)
    print(code, text)
    want = b"5.7.1 <ceo@" + dom.encode() + b">: Sender address rejected: not owned by user alice"
    if (code, text) != (553, want):
        sys.exit("MAIL FROM:<ceo@%s>: %d %r" % (dom, code, text))
    s.rset()
    msg = ("From: CEO <ceo@%s>\r\nTo: alice@%s\r\nSubject: spoof\r\nMessage-ID: <%s>\r\n\r\nwire money\r\n" % (dom, dom, mid)).encode()
    try:
        s.sendmail("alice@" + dom, ["alice@" + dom], msg)
        sys.exit("a From header of another address was accepted")
    except smtplib.SMTPDataError as e:
        print(e.smtp_code, e.smtp_error)
        if e.smtp_code != 550 or not e.smtp_error.startswith(b"5.7.1 <ceo@"):
            sys.exit("From header refused with %d %r" % (e.smtp_code, e.smtp_error))
EOF
  if sv_file alice "$SV_ID" >/dev/null 2>&1; then why "the message with another From address was stored"; return 1; fi
}
check serve-sender-rule-553-550 t_sender_rule

# A message submitted without Date and Message-ID gets both (RFC 6409
# sections 8.2, 8.3); the same message through the MX listener does not.
t_msa_fields() {
  local tag
  tag=$(newid)
  timeout 60 python3 - "$SV_HOST" "$SV_SUB" "$SV_MX" "$SV_CA" "$SV_DOMAIN" "$tag" "$SV_ALICE_PASS" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' || why "$(tail -n 1 "$LOGS/$CHECK.py")" || return 1
import smtplib, ssl, sys
host, sub, mx, ca, dom, tag, pw = sys.argv[1:]
for port, login in ((sub, True), (mx, False)):
    with smtplib.SMTP(host, int(port)) as s:
        s.ehlo("client.test")
        s.starttls(context=ssl.create_default_context(cafile=ca))
        s.ehlo("client.test")
        if login:
            s.login("alice", pw)
        msg = "From: alice@%s\r\nSubject: bare %s %s\r\n\r\nno Date, no Message-ID\r\n" % (dom, tag, port)
        s.sendmail("alice@" + dom, ["alice@" + dom], msg.encode())
EOF
  local f
  f=$(wait_mail_with "$SV_DATA/mail/alice" "Subject: bare $tag $SV_SUB" 15) || why "the submitted message did not arrive" || return 1
  sed '/^\r$/q' "$f" | grep -Eq '^Date: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} ' || why "no Date added: $(head -c 600 "$f" | tr '\r\n' '  ')" || return 1
  sed '/^\r$/q' "$f" | grep -Eq '^Message-ID: <[0-9]{14}\.[0-9A-F]{20}@localhost>' || why "no Message-ID added: $(head -c 600 "$f" | tr '\r\n' '  ')" || return 1
  f=$(wait_mail_with "$SV_DATA/mail/alice" "Subject: bare $tag $SV_MX" 15) || why "the MX message did not arrive" || return 1
  ! grep -Eq '^(Date|Message-ID):' "$f" || why "the MX listener added a field: $(head -c 600 "$f" | tr '\r\n' '  ')"
}
check serve-submission-adds-date-message-id t_msa_fields

# ---------------------------------------------------------------- POP3

# sv_deliver_bob KIND: put a message for bob through submission (as alice)
# and set SV_FILE to its Maildir file
sv_deliver_bob() {
  sv_msg "$1" || return 1
  timeout 60 swaks --server "$SV_HOST:$SV_SUB" --tls --tls-verify --tls-ca-path "$SV_CA" --tls-sni localhost \
    --auth PLAIN --auth-user alice --auth-password "$SV_ALICE_PASS" \
    --from "alice@$SV_DOMAIN" --to "bob@$SV_DOMAIN" --data - <"$SV_MSG" >"$LOGS/$CHECK.deliver" 2>&1 ||
    why "could not deliver a message for bob" || return 1
  SV_FILE=$(sv_file bob "$SV_ID") || why "message for bob not in the Maildir"
}

# sv_msgnum: bob's POP3 message number of SV_FILE (sorted Maildir names)
sv_msgnum() {
  python3 - "$SV_DATA/mail/bob" "$(basename "$SV_FILE")" <<'EOF'
import os, sys
d, want = sys.argv[1], sys.argv[2].split(":")[0]
names = sorted(n.split(":")[0] for s in ("new", "cur") for n in os.listdir(os.path.join(d, s)) if not n.startswith("."))
print(names.index(want) + 1)
EOF
}

t_curl_pop3s() {
  sv_deliver_bob dots || return 1
  local n
  n=$(sv_msgnum) || why "cannot number the message" || return 1
  timeout 60 curl -sS --url "pop3s://localhost:$SV_POP3S/$n" --cacert "$SV_CA" --user "bob:$SV_BOB_PASS" \
    -o "$SV_DIR/curl-pop3.eml" >"$LOGS/$CHECK.curl" 2>&1 || why "curl failed: $(tail -n 1 "$LOGS/$CHECK.curl")" || return 1
  cmp -s "$SV_DIR/curl-pop3.eml" "$SV_FILE" || why "RETR bytes differ from the Maildir file: $(cmp "$SV_DIR/curl-pop3.eml" "$SV_FILE" 2>&1)"
}
check serve-curl-pop3s-retr t_curl_pop3s

t_poplib() {
  sv_deliver_bob utf8 || return 1
  SV_PW=$SV_BOB_PASS timeout 60 python3 - "$SV_HOST" "$SV_POP3" "$SV_CA" "$SV_FILE" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' ||
import os, poplib, ssl, sys
host, port, ca, path = sys.argv[1:]
want = open(path, "rb").read()
p = poplib.POP3(host, int(port))
caps = p.capa()
assert "STLS" in caps and "USER" not in caps and "SASL" not in caps, caps
try:
    p.user("bob")
    raise SystemExit("USER accepted before STLS")
except poplib.error_proto as e:
    print("USER before STLS refused:", e)
p.stls(context=ssl.create_default_context(cafile=ca))
caps = p.capa()
assert "USER" in caps and "STLS" not in caps, caps
p.user("bob")
p.pass_(os.environ["SV_PW"])
found = False
for line in p.uidl()[1]:
    num = int(line.split()[0])
    _, lines, _ = p.retr(num)
    if b"\r\n".join(lines) + b"\r\n" == want:
        found = True
p.quit()
if not found:
    raise SystemExit("no retrieved message equals " + path)
EOF
    why "poplib: $(tail -n 1 "$LOGS/$CHECK.py")"
}
check serve-python-poplib-stls t_poplib

t_fetchmail() {
  sv_deliver_bob random || return 1
  local rc=$SV_DIR/fetchmailrc out=$SV_DIR/fetchmail.mbox
  rm -f "$out"
  cat >"$rc" <<EOF
set no syslog
poll $SV_HOST service $SV_POP3S protocol pop3 uidl
  user bob password "$SV_BOB_PASS" is root here
  ssl sslcertck sslcertfile "$SV_CA" sslcommonname localhost
  keep fetchall no rewrite
  mda "cat >> $out"
EOF
  chmod 600 "$rc"
  timeout 60 fetchmail -f "$rc" -i "$SV_DIR/fetchids" --nodetach -v >"$LOGS/$CHECK.fetchmail" 2>&1
  local rc_f=$?
  ((rc_f == 0)) || why "fetchmail exit $rc_f: $(grep -v '^fetchmail: WARNING' "$LOGS/$CHECK.fetchmail" | tail -n 2 | tr '\n' ' ')" || return 1
  # fetchmail hands the MDA LF line ends; compare on that form.
  tr -d '\r' <"$SV_FILE" >"$SV_DIR/fetchmail.want"
  grep -qF -- "$(tail -n 3 "$SV_DIR/fetchmail.want")" "$out" || why "fetched mail does not contain the message's end" || return 1
  # fetchmail adds its own Received header, below Return-Path and
  # Delivered-To; without it a fetched message equals the file.
  python3 - "$out" "$SV_DIR/fetchmail.want" <<'EOF' || why "no fetched message equals the Maildir file"
import re, sys
got, want = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
got = re.sub(rb"Received: from [^\n]*\n(?:[ \t][^\n]*\n)*", lambda m: b"" if b"fetchmail" in m.group(0) else m.group(0), got)
sys.exit(0 if want in got else 1)
EOF
}
if command -v fetchmail >/dev/null; then
  check serve-fetchmail-pop3s t_fetchmail
else
  skip serve-fetchmail-pop3s "fetchmail not installed"
fi

# ---------------------------------------------------------------- Postfix relays in

SV_PF=$SV_DIR/postfix
t_postfix_relay() {
  # Postfix (user postfix) must read the CA below $W.
  chmod o+x "$W"
  chmod o+rx "$SV_DIR" "$SV_DATA" "$SV_DATA/tls"
  private_postfix "$SV_PF" serve "$SV_HOST:$SV_POSTFIX" <<EOF || return 1
myhostname = relay.client.test
inet_interfaces = $SV_HOST
relayhost = [$SV_HOST]:$SV_MX
smtp_tls_security_level = encrypt
smtp_tls_CAfile = $SV_CA
smtp_tls_loglevel = 1
smtp_tls_session_cache_database =
smtpd_tls_security_level = none
always_add_missing_headers = no
EOF
  sv_msg random || return 1
  SV_FROM=sender@client.test
  timeout 60 swaks --server "$SV_HOST:$SV_POSTFIX" --from "$SV_FROM" --to "alice@$SV_DOMAIN" \
    --data - <"$SV_MSG" >"$LOGS/$CHECK.swaks" 2>&1 || why "swaks into the private postfix failed" || return 1
  sv_arrived alice '\r\n' || { why "postfix log: $(grep -E 'status=|TLS' "$SV_PF/maillog" | tail -n 2 | tr '\n' ' ')"; return 1; }
  grep -q "status=sent (250" "$SV_PF/maillog" || why "postfix did not log status=sent" || return 1
  grep -Eq "TLS connection established to .*:$SV_MX" "$SV_PF/maillog" || why "postfix did not log a TLS connection to mailsec"
}
check serve-postfix-relay-encrypt t_postfix_relay
# check runs in a subshell, so the cleanup is registered here.
[[ -e $SV_PF/spool/pid/master.pid ]] && on_exit "postfix -c '$SV_PF/etc' stop"

# ---------------------------------------------------------------- negative checks

# AUTH before STARTTLS: not advertised, and answered 538 when sent anyway.
t_auth_before_tls() {
  timeout 30 swaks --server "$SV_HOST:$SV_SUB" --auth PLAIN --auth-user alice --auth-password "$SV_ALICE_PASS" \
    --from "alice@$SV_DOMAIN" --to "alice@$SV_DOMAIN" --quit-after AUTH >"$LOGS/$CHECK.swaks" 2>&1
  grep -Eq '^ *<- +250[- ]AUTH' "$LOGS/$CHECK.swaks" && why "AUTH advertised before STARTTLS" && return 1
  if grep -Eq '^ *-> +AUTH' "$LOGS/$CHECK.swaks"; then
    grep -Eq '^ *<\*\* +538 5\.7\.11' "$LOGS/$CHECK.swaks" || why "swaks's AUTH not answered 538" || return 1
  fi
  # swaks does not send AUTH that was not advertised; send it by hand.
  python3 - "$SV_HOST" "$SV_SUB" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' || why "raw AUTH before STARTTLS: $(tail -n 1 "$LOGS/$CHECK.py")"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            return l
reply()
s.sendall(b"EHLO client.test\r\n"); reply()
s.sendall(b"AUTH PLAIN AGFsaWNlAHg=\r\n")
r = reply()
print(r)
sys.exit(0 if r.startswith(b"538 5.7.11") else 1)
EOF
}
check serve-auth-before-starttls-538 t_auth_before_tls

# Bare-LF smuggling (CVE-2023-51764 class): an end-of-data made of bare LFs
# must not end the message, and the message must be refused.
t_smuggling() {
  SV_ID=$(newid)
  python3 - "$SV_HOST" "$SV_MX" "$SV_CA" "$SV_DOMAIN" "$SV_ID" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' || why "$(tail -n 1 "$LOGS/$CHECK.py")" || return 1
import socket, ssl, sys
host, port, ca, dom, mid = sys.argv[1:]
raw = socket.create_connection((host, int(port)), timeout=10)
f = raw.makefile("rb")
def reply(f):
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            return l
reply(f)
raw.sendall(b"EHLO client.test\r\n"); reply(f)
raw.sendall(b"STARTTLS\r\n"); assert reply(f).startswith(b"220")
s = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname="localhost")
f = s.makefile("rb")
def cmd(line, want):
    s.sendall(line + b"\r\n")
    r = reply(f)
    if not r.startswith(want):
        sys.exit("%r -> %r, want %r" % (line, r, want))
    return r
cmd(b"EHLO client.test", b"250")
cmd(b"MAIL FROM:<attacker@evil.test>", b"250")
cmd(b"RCPT TO:<alice@" + dom.encode() + b">", b"250")
cmd(b"DATA", b"354")
smuggled = ("Subject: hi\r\n\r\nhello\n.\nMAIL FROM:<ceo@" + dom + ">\nRCPT TO:<alice@" + dom +
            ">\nDATA\nMessage-ID: <" + mid + ">\nSubject: smuggled\n\nwire money\n.\n\r\n.\r\n").encode()
s.sendall(smuggled)
r = reply(f)
print(r)
sys.exit(0 if r.startswith(b"554") else 1)
EOF
  if sv_file alice "$SV_ID" >/dev/null; then why "the smuggled message was delivered"; return 1; fi
}
check serve-bare-lf-smuggling-refused t_smuggling

# A command line ends only at CRLF (RFC 5321 section 2.3.8): a line with a
# bare LF is refused whole with one 500 5.5.2 and none of it runs (QUIT
# inside it does not close); the server logs that refusal once, with its
# codes, and its log holds no password of the section's logins.
t_bare_lf_command() {
  python3 - "$SV_HOST" "$SV_MX" >"$LOGS/$CHECK.py" 2>&1 <<'EOF' || why "$(tail -n 1 "$LOGS/$CHECK.py")" || return 1
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"EHLO client.test\r\nNOOP\nQUIT\r\nHELP\r\nQUIT\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
finals = [l[:9] for l in data.split(b"\r\n") if l[3:4] == b" "]  # the last line of each reply
print(finals)
sys.exit(0 if [r[:3] for r in finals] == [b"220", b"250", b"500", b"214", b"221"] and finals[2] == b"500 5.5.2" else 1)
EOF
  local n
  n=$(grep 'refused' "$SV_DIR/serve.log" | grep -c '5\.5\.2')
  [[ $n == 1 ]] || why "$n refusal lines with 5.5.2 in serve.log, want 1" || return 1
  grep -qF "$SV_ALICE_PASS" "$SV_DIR/serve.log" && why "serve.log holds alice's password" && return 1
  grep -qF "$SV_BOB_PASS" "$SV_DIR/serve.log" && why "serve.log holds bob's password" && return 1
  return 0
}
check serve-bare-lf-command-refused-whole t_bare_lf_command

# The metrics endpoint shows what the section did.
t_metrics() {
  curl -sS "http://$SV_HOST:$SV_METRICS/metrics" >"$SV_DIR/metrics.txt" 2>"$LOGS/$CHECK.curl" || why "cannot scrape metrics" || return 1
  local m
  for m in 'mailsec_connections_total{kind="pop3s",listener="pop3s"}' 'mailsec_tls_handshakes_total{listener="mx",mode="starttls",version="TLS1.3"}' \
    'mailsec_auth_total{listener="submission",mechanism="SCRAM-SHA-256",result="success"}' \
    'mailsec_auth_total{listener="pop3",mechanism="USER",result="success"}' \
    'mailsec_messages_total{reason="content",result="rejected"}' 'mailsec_pop3_retrievals_total{listener="pop3s"}'; do
    grep -qF "$m " "$SV_DIR/metrics.txt" || why "metric $m missing" || return 1
  done
}
check serve-metrics-scrape t_metrics
