# Named accounts from a configuration file in msmtp's syntax (sourced by
# scripts/interop.sh). msmtp reads the very same file: where both deliver,
# mailsec read the account as msmtp does. A file others can read that holds
# a password is refused (exit 78) before any connection.

ACCT_DIR=$W/accounts
mkdir -p "$ACCT_DIR/xdg/mailsec"

# acct_rc FILE: an msmtprc for the peers, alice's password written in it
acct_rc() {
  cat >"$1" <<EOF
# written by scripts/interop.d/accounts.sh
defaults
tls            on
tls_trust_file $CA_PEM
logfile        $ACCT_DIR/msmtp.log

account        peer
host           $PEERS_HOST
port           $SMTP_SUBMISSION_PORT
tls_host_override $TLS_SERVER_NAME
domain         client.example.test
from           sender@$MAIL_DOMAIN
auth           scram-sha-256
user           $ALICE_USER
password       "$ALICE_PASS"

# implicit TLS, the rest inherited
account        peer-smtps : peer
port           $SMTP_SMTPS_PORT
tls_starttls   off

account default : peer
EOF
  chmod 600 "$1"
}

# acct_send MSG ARGS...: mailsec send with no password in the environment
acct_send() {
  local msg=$1
  shift
  MS_NOPASS=1 ms "$msg" --json "$@"
}

# acct_delivered ID MSG MECH: the message arrived whole, over TLS, with MECH
acct_delivered() {
  local f m
  f=$(wait_delivered "$1" 20) || why "message $1 not delivered within 20s" || return 1
  same_tail "$f" "$2" || why "delivered bytes differ: $(diff_hint "$f" "$2")" || return 1
  first_received "$f" | grep -q 'using TLS' || why "Received header has no TLS: $(first_received "$f")" || return 1
  m=$(sasl_method "$1") || why "no sasl_method for $1 in the Postfix log" || return 1
  [[ ${m^^} == "${3^^}" ]] || why "Postfix logged sasl_method=$m, want $3"
}

# t_acct_send KIND MECH PORT ARGS...: mailsec send with ARGS (and no
# password in the environment) delivers a KIND message as alice through
# PORT, over TLS, authenticated with MECH
t_acct_send() {
  local kind=$1 mech=$2 port=$3 id msg=$MSGS/$CHECK.eml
  shift 3
  acct_rc "$ACCT_DIR/msmtprc"
  acct_rc "$ACCT_DIR/xdg/mailsec/config"
  id=$(newid)
  mkmsg "$msg" "$id" "$kind" || return 1
  need_bin || return 1
  acct_send "$msg" "$@" --to "$ALICE_ADDR" || return 1
  ((MS_RC == 0)) || why "mailsec exit $MS_RC: $(ms_summary)" || return 1
  [[ $(jq -r .server "$MS_OUT") == "$PEERS_HOST:$port" ]] || why "sent to $(jq -r .server "$MS_OUT"), want port $port" || return 1
  acct_delivered "$id" "$msg" "$mech"
}

# msmtp delivers with the same file first: the file means what it says.
t_acct_same_as_msmtp() {
  local id msg=$MSGS/$CHECK-msmtp.eml
  acct_rc "$ACCT_DIR/msmtprc"
  id=$(newid)
  mkmsg "$msg" "$id" random || return 1
  timeout 60 msmtp -C "$ACCT_DIR/msmtprc" -a peer -- "$ALICE_ADDR" <"$msg" >"$LOGS/$CHECK.msmtp" 2>&1 ||
    why "msmtp with the same file failed: $(tail -n 1 "$LOGS/$CHECK.msmtp")" || return 1
  acct_delivered "$id" "$msg" SCRAM-SHA-256 || return 1
  t_acct_send random SCRAM-SHA-256 "$SMTP_SUBMISSION_PORT" --config "$ACCT_DIR/msmtprc" --account peer
}

t_acct_readable_refused() {
  local rc=$ACCT_DIR/readable-rc msg=$MSGS/$CHECK.eml before after
  acct_rc "$rc"
  chmod 644 "$rc"
  mkmsg "$msg" "$(newid)" random || return 1
  # msmtp (1.8.23 here) sends with such a file; mailsec must not.
  need_bin || return 1
  before=$(grep -c 'connect from' "$POSTFIX_LOG")
  acct_send "$msg" --config "$rc" -a peer --to "$ALICE_ADDR" || return 1
  ((MS_RC == 78)) || why "mailsec exit $MS_RC, want 78" || return 1
  [[ $(json_code) == Config ]] || why "error.code $(json_code), want Config" || return 1
  grep -q 'chmod 600' "$MS_OUT" || why "the error does not say how to fix it: $(jq -c .error "$MS_OUT")" || return 1
  grep -qF -- "$ALICE_PASS" "$MS_OUT" "$MS_ERR" && why "the password appears in the output"
  sleep 1
  after=$(grep -c 'connect from' "$POSTFIX_LOG")
  ((before == after)) || why "mailsec connected to the server before refusing its configuration"
}

check accounts-same-file-as-msmtp t_acct_same_as_msmtp
check accounts-inherit-implicit-tls t_acct_send dots SCRAM-SHA-256 "$SMTP_SMTPS_PORT" --config "$ACCT_DIR/msmtprc" -a peer-smtps
check accounts-flag-beats-account t_acct_send random PLAIN "$SMTP_SUBMISSION_PORT" --config "$ACCT_DIR/msmtprc" -a peer --auth plain
# No --server, no --account, no --from: the default account of the file
# under $XDG_CONFIG_HOME supplies them.
XDG_CONFIG_HOME=$ACCT_DIR/xdg HOME=$ACCT_DIR check accounts-xdg-default-account t_acct_send random SCRAM-SHA-256 "$SMTP_SUBMISSION_PORT"
check accounts-readable-password-file-refused t_acct_readable_refused
