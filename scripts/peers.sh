#!/usr/bin/env bash
# Real-peer test servers for the mailsec interop harness.
#
#   scripts/peers.sh start    WORKDIR   install packages, make PKI, start Postfix + Dovecot
#   scripts/peers.sh stop     WORKDIR   stop both
#   scripts/peers.sh status   WORKDIR   show what is running
#   scripts/peers.sh selftest WORKDIR   check the running peers with swaks/curl (no mailsec)
#   scripts/peers.sh install PKG...     install packages as start does (no daemon started)
#
# Everything lives under WORKDIR (absolute or relative; it is made absolute):
#   WORKDIR/env              shell assignments (source it) describing the peers
#   WORKDIR/pki/             ca.pem ca.key server.pem server.key other-ca.pem other-ca.key
#   WORKDIR/mail/<user>/     Maildirs (new/ cur/ tmp/), owned by the system user vmail
#   WORKDIR/postfix/etc      private Postfix config (main.cf, master.cf, vmailbox)
#   WORKDIR/postfix/spool    its queue_directory (pid/master.pid), .../data its data_directory
#   WORKDIR/postfix/maillog  Postfix log (maillog_file, no syslog)
#   WORKDIR/dovecot/         dovecot.conf, passwd, run/ (base_dir, master.pid), state/, dovecot.log
#
# Only 127.0.0.1 is used (IPv4 only), on these ports:
#   10587 SMTP submission: STARTTLS required (encrypt), AUTH only after TLS,
#         mail accepted only after AUTH
#   10465 SMTPS (implicit TLS), AUTH, mail accepted only after AUTH
#   10025 SMTP plain: no STARTTLS, no AUTH, accepts mail for example.test from anyone
#   10026 SMTP MX-style: STARTTLS offered (may), AUTH only after TLS, accepts
#         mail for example.test without AUTH
#   10110 POP3 with STLS
#   10995 POP3S (implicit TLS)
#   10012 Dovecot auth (SASL for Postfix: smtpd_sasl_type=dovecot,
#         smtpd_sasl_path=inet:127.0.0.1:10012)
# Postfix advertises PIPELINING SIZE(60 MiB) 8BITMIME SMTPUTF8 CHUNKING DSN
# ENHANCEDSTATUSCODES; its Received header records TLS ("using TLSv1.3 ...")
# and "with ESMTPSA" after AUTH; its log records sasl_method= per message.
# Message content is not rewritten (no header rewriting or added headers
# besides Received, then Return-Path/X-Original-To/Delivered-To at delivery).
# Nothing is relayed anywhere: default/relay/local transports are error:.
#
# Users (Dovecot passwd-file, {PLAIN} scheme, username_format=%n so "alice" and
# "alice@example.test" both log in as alice; the canonical login is the bare "alice"):
#   alice / Al1ce-s3cret!   mail: alice@example.test -> WORKDIR/mail/alice/
#   bob   / b0b-pass        mail: bob@example.test   -> WORKDIR/mail/bob/
#   carol / c4rol-pop3      mail: carol@example.test -> WORKDIR/mail/carol/
#                           (the POP3 fetch checks' own mailbox)
#   dave  / d4ve-proxy      mail: dave@example.test  -> WORKDIR/mail/dave/
#                           (fetches through proxies)
# SASL mechanisms: plain login cram-md5 scram-sha-1 scram-sha-256, plus ntlm
# when this Dovecot build has it (Debian 12's 2.3.19 does not: it is probed and
# dropped). Override the wanted list with PEERS_MECHS="...". The offered list
# is SASL_MECHS in WORKDIR/env.
#
# Quirks:
#  * Dovecot 2.3 counts a connection whose remote IP equals its local IP
#    (127.0.0.1 -> 127.0.0.1) as secured, so disable_plaintext_auth=yes (set)
#    does not stop USER/PASS or AUTH PLAIN before STLS on 10110 from loopback.
#  * Postfix keeps its connection to Dovecot auth open: if Dovecot is
#    restarted under a running Postfix, the next AUTH fails once with 454.
#    "start" always (re)starts both, Dovecot first.
#
# Re-running "start" stops the instance in WORKDIR (and any other instance this
# script started, recorded in /run/mailsec-peers/) and starts afresh: PKI,
# mail, queue and logs are recreated. Needs root. No systemd is used; daemons
# run directly (dovecot -c ..., postfix -c ... start). PEERS_START_TIMEOUT
# (default 30 s) bounds the wait for the ports.
set -euo pipefail

PROG=${0##*/}
HOST=127.0.0.1
PORT_SUBMISSION=10587
PORT_SMTPS=10465
PORT_PLAIN=10025
PORT_MX=10026
PORT_POP3=10110
PORT_POP3S=10995
PORT_AUTH=10012
MAIL_DOMAIN=example.test
TLS_SERVER_NAME=localhost
ALICE_PASS='Al1ce-s3cret!'
BOB_PASS='b0b-pass'
CAROL_PASS='c4rol-pop3'
DAVE_PASS='d4ve-proxy'
WANT_MECHS=${PEERS_MECHS:-"plain login cram-md5 scram-sha-1 scram-sha-256 ntlm"}
INSTANCES_DIR=/run/mailsec-peers
START_TIMEOUT=${PEERS_START_TIMEOUT:-30}

PACKAGES=(postfix dovecot-core dovecot-pop3d swaks msmtp openssl ca-certificates
  jq curl procps iproute2 libnet-ssleay-perl libio-socket-ssl-perl
  libauthen-sasl-perl libauthen-ntlm-perl libdigest-hmac-perl
  fetchmail microsocks dante-server tinyproxy openssh-server git git-email)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  echo "usage: $PROG start|stop|status|selftest WORKDIR | install PKG..." >&2
  exit 2
}

# ---------------------------------------------------------------- install

# install_packages PKG...: apt-get install those of PKG not installed yet,
# with no system daemon started (policy-rc.d guard); also what
# "peers.sh install PKG..." does for the interop sections and CI
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  log "installing: ${missing[*]}"
  # "No configuration" keeps postfix from asking questions and from writing
  # /etc/postfix/main.cf; our instance has its own config directory.
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  # Keep the packages' init scripts from starting system-wide daemons.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  local rc=0
  apt-get update -q >/dev/null || rc=$?
  if ((rc == 0)); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "${missing[@]}" >&2 || rc=$?
  fi
  ((made_policy)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get failed (rc=$rc)"
}

# ---------------------------------------------------------------- helpers

# pid_alive PIDFILE COMM: print the pid if the file names a live process called COMM
pid_alive() {
  local file=$1 comm=$2 pid
  [[ -r $file ]] || return 1
  read -r pid <"$file" || true
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/comm && $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  echo "$pid"
}

# wait_gone PID SECONDS: wait for a process to exit; 1 if it did not
wait_gone() {
  local pid=$1 i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# banner HOST PORT: first line the server sends (plain-text services)
banner() {
  timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2 && IFS= read -r -t 2 line <&3 && printf '%s\n' \"\$line\"" 2>/dev/null | tr -d '\r'
}

stop_instance() {
  local w=$1 pid stopped=0
  if pid=$(pid_alive "$w/postfix/spool/pid/master.pid" master); then
    log "stopping postfix (pid $pid) in $w"
    timeout 20 postfix -c "$w/postfix/etc" stop >/dev/null 2>&1 || true
    if ! wait_gone "$pid" 10; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 5 || true
    fi
    stopped=1
  fi
  if pid=$(pid_alive "$w/dovecot/run/master.pid" dovecot); then
    log "stopping dovecot (pid $pid) in $w"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 10; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 5 || true
    fi
    stopped=1
  fi
  rm -f "$INSTANCES_DIR/$(instance_key "$w")"
  ((stopped)) || log "nothing running in $w"
  return 0
}

instance_key() { printf '%s' "$1" | md5sum | cut -c1-16; }

# Stop instances started from other work dirs (they hold the same ports).
stop_other_instances() {
  local f other
  [[ -d $INSTANCES_DIR ]] || return 0
  for f in "$INSTANCES_DIR"/*; do
    [[ -f $f ]] || continue
    other=$(cat "$f")
    [[ $other == "$W" ]] && continue
    if [[ -d $other ]]; then
      log "stopping previous instance in $other"
      stop_instance "$other"
    fi
    rm -f "$f"
  done
}

# ---------------------------------------------------------------- PKI

make_pki() {
  local d=$W/pki
  rm -rf "$d"
  mkdir -p "$d"
  cat >"$d/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  local k
  for k in ca other-ca server; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$k.key" 2>/dev/null
  done
  openssl req -config "$d/openssl.cnf" -new -x509 -sha256 -days 3650 \
    -key "$d/ca.key" -subj '/O=mailsec interop/CN=mailsec interop test CA' \
    -extensions ca_ext -set_serial "0x$(openssl rand -hex 16)" -out "$d/ca.pem"
  openssl req -config "$d/openssl.cnf" -new -x509 -sha256 -days 3650 \
    -key "$d/other-ca.key" -subj '/O=mailsec interop/CN=mailsec interop OTHER (untrusted) CA' \
    -extensions ca_ext -set_serial "0x$(openssl rand -hex 16)" -out "$d/other-ca.pem"
  openssl req -config "$d/openssl.cnf" -new -sha256 -key "$d/server.key" \
    -subj '/O=mailsec interop/CN=localhost' -out "$d/server.csr"
  openssl x509 -req -sha256 -days 825 -in "$d/server.csr" \
    -CA "$d/ca.pem" -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$d/openssl.cnf" -extensions server_ext -out "$d/server.pem" 2>/dev/null
  cat "$d/server.pem" "$d/ca.pem" >"$d/server-chain.pem"
  rm -f "$d/server.csr"
  openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null || die "server cert does not verify"
  chmod 644 "$d"/*.pem
  chmod 600 "$d"/*.key
}

# ---------------------------------------------------------------- users and maildirs

setup_vmail() {
  if ! getent passwd vmail >/dev/null; then
    getent group vmail >/dev/null || groupadd --system vmail
    useradd --system --gid vmail --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin --comment 'mailsec interop virtual mail' vmail
  fi
  VMAIL_UID=$(id -u vmail)
  VMAIL_GID=$(id -g vmail)
  ((VMAIL_UID >= 100)) || die "user vmail has uid $VMAIL_UID < 100 (Postfix virtual_minimum_uid)"
  rm -rf "$W/mail"
  local u
  for u in alice bob carol dave; do
    mkdir -p "$W/mail/$u/new" "$W/mail/$u/cur" "$W/mail/$u/tmp"
  done
  chown -R vmail:vmail "$W/mail"
  chmod -R u=rwX,g=rX,o= "$W/mail"
}

# ---------------------------------------------------------------- Dovecot

prepare_dovecot() {
  local d=$W/dovecot
  rm -rf "$d"
  mkdir -p "$d/run" "$d/state"
  printf 'alice:{PLAIN}%s::::::\nbob:{PLAIN}%s::::::\ncarol:{PLAIN}%s::::::\ndave:{PLAIN}%s::::::\n' \
    "$ALICE_PASS" "$BOB_PASS" "$CAROL_PASS" "$DAVE_PASS" >"$d/passwd"
  chown root:dovecot "$d/passwd"
  chmod 640 "$d/passwd"
  : >"$d/dovecot.log"
}

# write_dovecot_conf MECHS...
write_dovecot_conf() {
  local d=$W/dovecot
  cat >"$d/dovecot.conf" <<EOF
# Generated by scripts/peers.sh: private Dovecot instance for mailsec interop tests.
# No system configuration is read.
instance_name = mailsec-interop
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
debug_log_path = $d/dovecot.log
protocols = pop3
listen = $HOST
shutdown_clients = yes

ssl = yes
ssl_cert = <$W/pki/server.pem
ssl_key = <$W/pki/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes

auth_mechanisms = $*
auth_verbose = yes
auth_failure_delay = 1 secs
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $d/passwd
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=$W/mail/%n
}

mail_location = maildir:$W/mail/%n
mail_uid = vmail
mail_gid = vmail
first_valid_uid = $VMAIL_UID
last_valid_uid = $VMAIL_UID
first_valid_gid = $VMAIL_GID

service pop3-login {
  inet_listener pop3 {
    address = $HOST
    port = $PORT_POP3
  }
  inet_listener pop3s {
    address = $HOST
    port = $PORT_POP3S
    ssl = yes
  }
}
service auth {
  # SASL for Postfix (smtpd_sasl_type = dovecot, smtpd_sasl_path = inet:$HOST:$PORT_AUTH)
  inet_listener {
    address = $HOST
    port = $PORT_AUTH
  }
}
EOF
  doveconf -c "$d/dovecot.conf" -n >/dev/null 2>"$d/doveconf.err" ||
    die "dovecot config invalid: $(cat "$d/doveconf.err")"
}

# probe_mechs: drop from mechs[] what this Dovecot lacks, asking a throw-away
# auth process (it dies at once on an unknown mechanism, otherwise it runs
# until the timeout). Saves a restart of the real instance.
probe_mechs() {
  local auth=/usr/lib/dovecot/auth m keep=() pd out
  [[ -x $auth ]] || return 0
  pd=$(mktemp -d)
  for m in "${mechs[@]}"; do
    case $m in
      plain | login | cram-md5 | scram-sha-1 | scram-sha-256) keep+=("$m"); continue ;;
    esac
    write_dovecot_conf plain "$m"
    sed "s|^base_dir = .*|base_dir = $pd|; s|^state_dir = .*|state_dir = $pd|; /_log_path = /d; s|^log_path = .*|log_path = /dev/stderr|" \
      "$d/dovecot.conf" >"$pd/probe.conf"
    out=$(timeout 1 "$auth" -c "$pd/probe.conf" 2>&1 </dev/null || true)
    if grep -qi "Unknown authentication mechanism" <<<"$out"; then
      log "dovecot $(dovecot --version | cut -d' ' -f1) lacks mechanism $m; not offering it"
    else
      keep+=("$m")
    fi
  done
  rm -rf "$pd"
  mechs=("${keep[@]}")
}

# start_dovecot: start with every wanted mechanism; a mechanism this Dovecot
# build lacks (Debian's 2.3.19 has no NTLM) makes the auth process die with
# "Unknown authentication mechanism 'X'": drop X and restart.
start_dovecot() {
  local d=$W/dovecot mechs bad deadline pid
  read -ra mechs <<<"$WANT_MECHS"
  prepare_dovecot
  probe_mechs
  while :; do
    write_dovecot_conf "${mechs[@]}"
    : >"$d/dovecot.log"
    # Detach from our stdout/stderr: callers may read them through a pipe.
    dovecot -c "$d/dovecot.conf" </dev/null >>"$d/dovecot.log" 2>&1 ||
      die "dovecot failed to start: $(tail -n 5 "$d/dovecot.log")"
    deadline=$((SECONDS + START_TIMEOUT))
    bad='' SASL_MECHS=''
    while ((SECONDS < deadline)); do
      SASL_MECHS=$(query_mechs || true)
      [[ -n $SASL_MECHS ]] && break
      bad=$(sed -n "s/.*Unknown authentication mechanism '\([^']*\)'.*/\1/p" "$d/dovecot.log" | head -n1)
      [[ -n $bad ]] && break
      sleep 0.2
    done
    [[ -n $SASL_MECHS ]] && return 0
    [[ -n $bad ]] || die "dovecot auth did not answer on $HOST:$PORT_AUTH: $(tail -n 5 "$d/dovecot.log")"
    log "dovecot lacks mechanism ${bad,,}; dropping it"
    local keep=() m
    for m in "${mechs[@]}"; do [[ ${m,,} == "${bad,,}" ]] || keep+=("$m"); done
    mechs=("${keep[@]}")
    if pid=$(pid_alive "$d/run/master.pid" dovecot); then
      kill -TERM "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; }
    fi
  done
}

# query_mechs: list mechanisms the running Dovecot auth server offers (lower case)
query_mechs() {
  timeout 5 bash -c '
    exec 3<>/dev/tcp/'"$HOST/$PORT_AUTH"' || exit 1
    printf "VERSION\t1\t2\nCPID\t%d\n" $$ >&3
    while IFS= read -r -t 3 line <&3; do
      case $line in
        MECH*) printf "%s\n" "$line" | cut -f2 ;;
        DONE*) break ;;
      esac
    done' 2>/dev/null | tr 'A-Z' 'a-z' | tr '\n' ' ' | sed 's/ $//'
}

# ---------------------------------------------------------------- Postfix

start_postfix() {
  local p=$W/postfix etc=$W/postfix/etc
  rm -rf "$p"
  mkdir -p "$etc" "$p/spool" "$p/data"
  printf '%s@%s %s/\n' alice "$MAIL_DOMAIN" alice bob "$MAIL_DOMAIN" bob \
    carol "$MAIL_DOMAIN" carol dave "$MAIL_DOMAIN" dave >"$etc/vmailbox"
  cat >"$etc/main.cf" <<EOF
# Generated by scripts/peers.sh: private Postfix instance for mailsec interop tests.
compatibility_level = 3.6
config_directory = $etc
queue_directory = $p/spool
data_directory = $p/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $p/maillog
maillog_file_prefixes = $W
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
syslog_name = postfix-mailsec

myhostname = mx.$MAIL_DOMAIN
mydomain = $MAIL_DOMAIN
myorigin = \$myhostname
mydestination =
inet_interfaces = $HOST
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
alias_maps =
alias_database =
local_recipient_maps =

# Nothing ever leaves this machine.
default_transport = error:outbound mail disabled in the mailsec test instance
relay_transport = \$default_transport
local_transport = \$default_transport
relay_domains =

# Delivery: virtual Maildirs under $W/mail, owned by vmail.
virtual_mailbox_domains = $MAIL_DOMAIN
virtual_mailbox_base = $W/mail
virtual_mailbox_maps = texthash:$etc/vmailbox
virtual_uid_maps = static:$VMAIL_UID
virtual_gid_maps = static:$VMAIL_GID
virtual_minimum_uid = 100
virtual_mailbox_limit = 0
message_size_limit = 62914560

# Do not touch message content: no header rewriting, no added headers
# (besides Received, and Return-Path/Delivered-To at delivery).
local_header_rewrite_clients =
remote_header_rewrite_domain =
always_add_missing_headers = no

smtputf8_enable = yes
smtpd_discard_ehlo_keywords =
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_auth_rate_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200

smtpd_tls_chain_files = $W/pki/server.key, $W/pki/server.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:$HOST:$PORT_AUTH
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
EOF
  local sub="-o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=yes"
  local only_auth="-o smtpd_relay_restrictions=permit_sasl_authenticated,reject -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject"
  cat >"$etc/master.cf" <<EOF
# Generated by scripts/peers.sh. chroot is off everywhere.
# service                  type  private unpriv chroot wakeup maxproc command + args
$HOST:$PORT_SUBMISSION     inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-mailsec/submission
  -o smtpd_tls_security_level=encrypt
  $sub
  $only_auth
$HOST:$PORT_SMTPS          inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-mailsec/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  $sub
  $only_auth
$HOST:$PORT_PLAIN          inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-mailsec/plain
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
$HOST:$PORT_MX             inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-mailsec/mx
  -o smtpd_tls_security_level=may
  $sub
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
local      unix  -       n       n       -       -       local
virtual    unix  -       n       n       -       -       virtual
lmtp       unix  -       -       n       -       -       lmtp
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
EOF
  chmod 644 "$etc"/*
  # Postfix insists on exact ownership of its queue (postfix:postdrop etc.).
  # "set-permissions" runs post-install, which creates the queue tree with the
  # right owners and modes; it also fixes data_directory.
  postfix -c "$etc" set-permissions >"$p/set-permissions.log" 2>&1 ||
    die "postfix set-permissions failed: $(tail -5 "$p/set-permissions.log")"
  postfix -c "$etc" check >"$p/check.log" 2>&1 ||
    die "postfix check failed: $(tail -5 "$p/check.log")"
  postfix -c "$etc" start >"$p/start.log" 2>&1 ||
    die "postfix failed to start: $(tail -5 "$p/start.log"; tail -5 "$p/maillog" 2>/dev/null)"
}

# ---------------------------------------------------------------- env file

write_env() {
  local f=$W/env
  {
    echo "# Generated by scripts/peers.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Source me."
    local kv
    for kv in \
      "PEERS_WORKDIR=$W" \
      "PEERS_HOST=$HOST" \
      "PKI_DIR=$W/pki" \
      "CA_PEM=$W/pki/ca.pem" \
      "CA_KEY=$W/pki/ca.key" \
      "SERVER_CERT=$W/pki/server.pem" \
      "SERVER_KEY=$W/pki/server.key" \
      "SERVER_CHAIN=$W/pki/server-chain.pem" \
      "OTHER_CA_PEM=$W/pki/other-ca.pem" \
      "OTHER_CA_KEY=$W/pki/other-ca.key" \
      "TLS_SERVER_NAME=$TLS_SERVER_NAME" \
      "SMTP_SUBMISSION_PORT=$PORT_SUBMISSION" \
      "SMTP_SMTPS_PORT=$PORT_SMTPS" \
      "SMTP_PLAIN_PORT=$PORT_PLAIN" \
      "SMTP_MX_PORT=$PORT_MX" \
      "POP3_PORT=$PORT_POP3" \
      "POP3S_PORT=$PORT_POP3S" \
      "DOVECOT_AUTH_PORT=$PORT_AUTH" \
      "MAIL_DOMAIN=$MAIL_DOMAIN" \
      "SASL_MECHS=$SASL_MECHS" \
      "ALICE_USER=alice" \
      "ALICE_PASS=$ALICE_PASS" \
      "ALICE_ADDR=alice@$MAIL_DOMAIN" \
      "ALICE_MAILDIR=$W/mail/alice" \
      "BOB_USER=bob" \
      "BOB_PASS=$BOB_PASS" \
      "BOB_ADDR=bob@$MAIL_DOMAIN" \
      "BOB_MAILDIR=$W/mail/bob" \
      "CAROL_USER=carol" \
      "CAROL_PASS=$CAROL_PASS" \
      "CAROL_ADDR=carol@$MAIL_DOMAIN" \
      "CAROL_MAILDIR=$W/mail/carol" \
      "DAVE_USER=dave" \
      "DAVE_PASS=$DAVE_PASS" \
      "DAVE_ADDR=dave@$MAIL_DOMAIN" \
      "DAVE_MAILDIR=$W/mail/dave" \
      "POSTFIX_CONFIG_DIR=$W/postfix/etc" \
      "POSTFIX_QUEUE_DIR=$W/postfix/spool" \
      "POSTFIX_LOG=$W/postfix/maillog" \
      "DOVECOT_CONFIG=$W/dovecot/dovecot.conf" \
      "DOVECOT_LOG=$W/dovecot/dovecot.log" \
      "DOVECOT_VERSION=$(dovecot --version | cut -d' ' -f1)" \
      "POSTFIX_VERSION=$(postconf -c "$W/postfix/etc" -h mail_version)"; do
      printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
    done
  } >"$f.tmp"
  mv "$f.tmp" "$f"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  ((EUID == 0)) || die "must run as root"
  install_packages "${PACKAGES[@]}"
  mkdir -p "$W" "$INSTANCES_DIR"
  stop_other_instances
  stop_instance "$W"
  # Postfix (user postfix), its virtual agent and Dovecot (user vmail) must be
  # able to traverse WORKDIR; mktemp -d makes it 0700.
  chmod 755 "$W"
  local a=$W
  while [[ $a != / ]]; do
    a=$(dirname "$a")
    if [[ $(stat -c %A "$a") != d????????[xt] ]]; then
      die "directory $a is not searchable by other users (postfix/vmail need to traverse it)"
    fi
  done
  local port busy=()
  for port in $PORT_SUBMISSION $PORT_SMTPS $PORT_PLAIN $PORT_MX $PORT_POP3 $PORT_POP3S $PORT_AUTH; do
    port_open "$HOST" "$port" && busy+=("$port")
  done
  if ((${#busy[@]})); then
    ss -ltnp 2>/dev/null | grep -E ":($(IFS='|'; echo "${busy[*]}"))\b" >&2 || true
    die "ports already in use by something else: ${busy[*]}"
  fi
  rm -f "$W/env"
  make_pki
  setup_vmail
  printf '%s\n' "$W" >"$INSTANCES_DIR/$(instance_key "$W")"
  # On any failure below, do not leave half an instance running.
  trap 'stop_instance "$W"' EXIT
  start_dovecot
  # Dovecot auth must be up before Postfix can offer AUTH.
  wait_ports "$PORT_AUTH" "$PORT_POP3" "$PORT_POP3S"
  start_postfix
  wait_ports "$PORT_SUBMISSION" "$PORT_SMTPS" "$PORT_PLAIN" "$PORT_MX"
  write_env
  trap - EXIT
  log "peers up in $W (dovecot $(dovecot --version | cut -d' ' -f1), postfix $(postconf -c "$W/postfix/etc" -h mail_version)); mechanisms: $SASL_MECHS"
  log "environment: $W/env"
  cat "$W/env"
}

# wait_ports PORT...: every port accepts a connection, and plain-text
# services send their greeting, within START_TIMEOUT seconds.
wait_ports() {
  local port deadline=$((SECONDS + START_TIMEOUT)) b
  for port in "$@"; do
    while :; do
      case $port in
        "$PORT_SUBMISSION" | "$PORT_PLAIN" | "$PORT_MX")
          b=$(banner "$HOST" "$port" || true)
          [[ $b == 220* ]] && break ;;
        "$PORT_POP3")
          b=$(banner "$HOST" "$port" || true)
          [[ $b == +OK* ]] && break ;;
        *)
          port_open "$HOST" "$port" && break ;;
      esac
      if ((SECONDS >= deadline)); then
        log "port $HOST:$port did not come up within ${START_TIMEOUT}s"
        tail -n 20 "$W/dovecot/dovecot.log" "$W/postfix/maillog" >&2 2>/dev/null || true
        exit 1
      fi
      sleep 0.2
    done
  done
}

cmd_stop() {
  stop_instance "$W"
}

cmd_status() {
  local pid
  if pid=$(pid_alive "$W/postfix/spool/pid/master.pid" master); then
    echo "postfix: running (pid $pid)"
  else
    echo "postfix: stopped"
  fi
  if pid=$(pid_alive "$W/dovecot/run/master.pid" dovecot); then
    echo "dovecot: running (pid $pid)"
  else
    echo "dovecot: stopped"
  fi
}

# selftest: exercise the peers with swaks and curl only. Prints PASS/FAIL lines.
cmd_selftest() {
  [[ -r $W/env ]] || die "no $W/env; run '$PROG start $W' first"
  # shellcheck disable=SC1091
  source "$W/env"
  local pass=0 fail=0 out id t
  t=$(mktemp -d)
  ok() { echo "PASS $1"; pass=$((pass + 1)); }
  ko() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
  delivered() { # delivered ID: the Maildir file (new/ or cur/) holding ID appears within 10 s
    local i f
    for ((i = 0; i < 50; i++)); do
      f=$(grep -rlF -- "$1" "$ALICE_MAILDIR/new" "$ALICE_MAILDIR/cur" 2>/dev/null | head -n1)
      [[ -n $f ]] && { echo "$f"; return 0; }
      sleep 0.2
    done
    return 1
  }
  local sw=(swaks --timeout 15 --from "selftest@$MAIL_DOMAIN" --to "$ALICE_ADDR" --tls-ca-path "$CA_PEM" --tls-verify)
  local mech
  for mech in PLAIN LOGIN CRAM-MD5 NTLM; do
    [[ " $SASL_MECHS " == *" ${mech,,} "* ]] || { echo "SKIP swaks-starttls-$mech: not offered by this Dovecot"; continue; }
    id="selftest-$mech-$RANDOM$RANDOM@$MAIL_DOMAIN"
    if out=$("${sw[@]}" --server "$PEERS_HOST:$SMTP_SUBMISSION_PORT" --tls --auth "$mech" \
      --auth-user "$ALICE_USER" --auth-password "$ALICE_PASS" --header "Message-ID: <$id>" 2>&1) &&
      delivered "$id" >/dev/null; then
      ok "swaks-starttls-$mech"
    else
      ko "swaks-starttls-$mech" "$(printf '%s\n' "$out" | grep -E '^ *(<~?|\*\*\*)' | tail -n2 | tr '\n' ' ')"
    fi
  done
  id="selftest-smtps-$RANDOM$RANDOM@$MAIL_DOMAIN"
  if out=$("${sw[@]}" --server "$PEERS_HOST:$SMTP_SMTPS_PORT" --tls-on-connect --auth PLAIN \
    --auth-user "$ALICE_USER" --auth-password "$ALICE_PASS" --header "Message-ID: <$id>" 2>&1) &&
    delivered "$id" >/dev/null; then
    ok "swaks-smtps-PLAIN"
  else
    ko "swaks-smtps-PLAIN" "$(printf '%s\n' "$out" | tail -n3 | tr '\n' ' ')"
  fi
  out=$(swaks --server "$PEERS_HOST:$SMTP_SUBMISSION_PORT" --quit-after EHLO 2>&1 || true)
  if grep -q '250.STARTTLS' <<<"$out" && ! grep -q '250.AUTH' <<<"$out"; then
    ok "submission-no-auth-before-starttls"
  else
    ko "submission-no-auth-before-starttls" "EHLO: $(grep '^<- *250' <<<"$out" | tr '\n' ' ')"
  fi
  out=$("${sw[@]}" --server "$PEERS_HOST:$SMTP_SUBMISSION_PORT" --tls --quit-after AUTH 2>&1 || true)
  if grep -Eq '250.AUTH .*SCRAM-SHA-256' <<<"$out"; then
    ok "submission-scram-sha-256-after-tls"
  else
    ko "submission-scram-sha-256-after-tls" "$(grep 'AUTH' <<<"$out" | tr '\n' ' ')"
  fi
  id="selftest-noauth-$RANDOM$RANDOM@$MAIL_DOMAIN"
  out=$("${sw[@]}" --server "$PEERS_HOST:$SMTP_SUBMISSION_PORT" --tls --header "Message-ID: <$id>" 2>&1 || true)
  if grep -Eq '^<~\*+ +554 5\.7\.1' <<<"$out"; then
    ok "submission-rejects-unauthenticated"
  else
    ko "submission-rejects-unauthenticated" "$(grep -E '<~' <<<"$out" | tail -n2 | tr '\n' ' ')"
  fi
  out=$(swaks --server "$PEERS_HOST:$SMTP_PLAIN_PORT" --quit-after EHLO 2>&1 || true)
  if grep -q '^<- *250' <<<"$out" && ! grep -Eq 'STARTTLS|AUTH' <<<"$out"; then
    ok "plain-port-no-starttls-no-auth"
  else
    ko "plain-port-no-starttls-no-auth" "$(grep '^<- *250' <<<"$out" | tr '\n' ' ')"
  fi
  id="selftest-plain-$RANDOM$RANDOM@$MAIL_DOMAIN"
  if out=$(swaks --server "$PEERS_HOST:$SMTP_PLAIN_PORT" --from "selftest@$MAIL_DOMAIN" --to "$ALICE_ADDR" \
    --header "Message-ID: <$id>" 2>&1) && delivered "$id" >/dev/null; then
    ok "plain-port-delivers"
  else
    ko "plain-port-delivers" "$(tail -n3 <<<"$out" | tr '\n' ' ')"
  fi
  out=$(swaks --server "$PEERS_HOST:$SMTP_MX_PORT" --quit-after EHLO 2>&1 || true)
  if grep -q '250.STARTTLS' <<<"$out" && ! grep -q '250.AUTH' <<<"$out"; then
    ok "mx-port-starttls-offered"
  else
    ko "mx-port-starttls-offered" "$(grep '^<- *250' <<<"$out" | tr '\n' ' ')"
  fi
  id="selftest-mx-$RANDOM$RANDOM@$MAIL_DOMAIN"
  local f
  if out=$("${sw[@]}" --server "$PEERS_HOST:$SMTP_MX_PORT" --tls --header "Message-ID: <$id>" 2>&1) &&
    f=$(delivered "$id") && grep -q 'using TLS' "$f"; then
    ok "mx-port-delivers-over-tls"
  else
    ko "mx-port-delivers-over-tls" "$(tail -n3 <<<"$out" | tr '\n' ' ')"
  fi
  local n
  if out=$(curl -sS --max-time 15 --ssl-reqd --cacert "$CA_PEM" -u "$ALICE_USER:$ALICE_PASS" \
    "pop3://$TLS_SERVER_NAME:$POP3_PORT/" --resolve "$TLS_SERVER_NAME:$POP3_PORT:$PEERS_HOST" 2>&1) &&
    n=$(grep -c '^[0-9]' <<<"$out") && ((n > 0)); then
    ok "pop3-stls-list ($n messages)"
  else
    ko "pop3-stls-list" "$out"
  fi
  if out=$(curl -sS --max-time 15 --cacert "$CA_PEM" -u "$ALICE_USER:$ALICE_PASS" \
    "pop3s://$TLS_SERVER_NAME:$POP3S_PORT/" --resolve "$TLS_SERVER_NAME:$POP3S_PORT:$PEERS_HOST" 2>&1) &&
    n=$(grep -c '^[0-9]' <<<"$out") && ((n > 0)); then
    ok "pop3s-list ($n messages)"
  else
    ko "pop3s-list" "$out"
  fi
  out=$(curl -sS --max-time 15 "pop3://$PEERS_HOST:$POP3_PORT/" -X CAPA 2>&1 || true)
  if grep -q '^STLS' <<<"$(tr -d '\r' <<<"$out")"; then
    ok "pop3-capa-offers-stls"
  else
    ko "pop3-capa-offers-stls" "$(tr '\r\n' '  ' <<<"$out")"
  fi
  # Dovecot 2.3 treats a connection whose remote IP equals its local IP
  # (127.0.0.1 -> 127.0.0.1) as "secured": disable_plaintext_auth (and even
  # ssl=required) do not apply, so USER/PASS and SASL PLAIN work before STLS.
  echo "INFO pop3: Dovecot allows plaintext login before STLS from 127.0.0.1 (loopback counts as secured)"
  rm -rf "$t"
  echo "$pass passed, $fail failed"
  ((fail == 0))
}

if [[ ${1:-} == install ]]; then
  shift
  (($# > 0)) || usage
  install_packages "$@"
  exit 0
fi

[[ $# -eq 2 ]] || usage
W=$2
[[ -n $W ]] || usage
mkdir -p "$W" 2>/dev/null || true
W=$(cd "$W" && pwd -P) || die "cannot use work dir $2"
[[ $W != / ]] || die "refusing to use / as work dir"

case $1 in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  selftest) cmd_selftest ;;
  *) usage ;;
esac
