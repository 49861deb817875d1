#!/usr/bin/env bash
# Runs bench/smtpserve with a private Postfix added to the comparison: a
# Postfix instance of its own (config_directory and queue_directory in a
# temporary directory, smtpd with STARTTLS on 127.0.0.1:${SMTPSERVE_POSTFIX_PORT:-15027},
# delivering sink@example.net into a Maildir with the virtual agent), then
# `go run ./bench/smtpserve -postfix ... "$@"`, then stops that instance.
# Needs root (Postfix starts as root) and the postfix and openssl packages;
# it never touches another Postfix instance.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
PORT=${SMTPSERVE_POSTFIX_PORT:-15027}
D=$(mktemp -d /tmp/smtpserve-postfix.XXXXXX)
chmod 755 "$D"
etc=$D/etc
stop() {
  postfix -c "$etc" stop >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap stop EXIT
mkdir -p "$etc" "$D/spool" "$D/data" "$D/mail"
chown nobody "$D/mail"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$D/key.pem" -out "$D/cert.pem" >/dev/null 2>&1
chmod 644 "$D/key.pem" "$D/cert.pem"
echo "sink@example.net sink/" >"$etc/vmailbox"
cat >"$etc/main.cf" <<EOF
compatibility_level = 3.6
config_directory = $etc
queue_directory = $D/spool
data_directory = $D/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $D/maillog
maillog_file_prefixes = $D
syslog_name = postfix-smtpserve
myhostname = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = example.net
virtual_mailbox_base = $D/mail
virtual_mailbox_maps = texthash:$etc/vmailbox
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
virtual_minimum_uid = 100
virtual_mailbox_limit = 0
message_size_limit = 1073741824
smtpd_tls_chain_files = $D/key.pem, $D/cert.pem
smtpd_tls_security_level = may
smtpd_tls_session_cache_database =
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_error_sleep_time = 0
EOF
# The stock service table, without the port 25 listener and chroot, plus
# our own smtpd.
cp /usr/share/postfix/master.cf.dist "$etc/master.cf"
postconf -c "$etc" -M# smtp/inet
postconf -c "$etc" -F "*/*/chroot = n"
postconf -c "$etc" -Me "127.0.0.1:$PORT/inet = 127.0.0.1:$PORT inet n - n - - smtpd"
chmod 644 "$etc"/*
postfix -c "$etc" set-permissions >"$D/setperm.log" 2>&1
postfix -c "$etc" start >"$D/start.log" 2>&1
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.2
done
cd "$REPO"
go run ./bench/smtpserve -postfix "127.0.0.1:$PORT" -postfix-ca "$D/cert.pem" "$@"
