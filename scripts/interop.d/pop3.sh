# shellcheck shell=bash
# POP3 section of scripts/interop.sh: mailsec fetch and probe --pop3 against
# Dovecot's STLS (POP3_PORT) and POP3S (POP3S_PORT) listeners, with carol's
# mailbox, which no other section touches.
#
# Messages are dropped straight into carol's Maildir new/ (as a delivery
# agent would) with LF line ends: a 20 MiB one, one with lines starting with
# dots, one with 8-bit UTF-8 and a small one. Each fetch must produce exactly
# the same set of files, byte for byte (compared by SHA-256), and a second
# run must fetch nothing and exit 0. Every combination of TLS mode (STLS,
# POP3S) and login (USER/PASS, SASL PLAIN) gets its own Maildir; one more run
# fills an mbox, and the last one deletes the messages on the server.

P3=$W/pop3
P3_SENT=$P3/sent
P3_COMMON=(--ca-file "$CA_PEM" --tls-server-name "$TLS_SERVER_NAME" --user "$CAROL_USER" --timeout 120s)

# p3_clear: empty carol's Maildir (Dovecot rescans it on the next login).
p3_clear() {
  find "$CAROL_MAILDIR/new" "$CAROL_MAILDIR/cur" "$CAROL_MAILDIR/tmp" -type f -delete 2>/dev/null
  return 0
}

# p3_fetch NAME ARGS...: run mailsec fetch --json with carol's password.
# Sets P3_RC and P3_OUT.
p3_fetch() {
  local name=$1
  shift
  P3_OUT=$LOGS/$CHECK.$name.json
  printf 'mailsec fetch' >>"$LOGS/$CHECK.cmd"
  printf ' %q' "$@" >>"$LOGS/$CHECK.cmd"
  printf '\n' >>"$LOGS/$CHECK.cmd"
  MAILSEC_PASSWORD=$CAROL_PASS timeout 300 "$BIN" fetch "${P3_COMMON[@]}" --json "$@" \
    >"$P3_OUT" 2>"$LOGS/$CHECK.$name.stderr"
  P3_RC=$?
}

# p3_same DIR: the Maildir DIR holds exactly the messages delivered.
p3_same() {
  local got want
  got=$(digests "$1/new" "$1/cur")
  want=$(digests "$P3_SENT")
  if [[ $got != "$want" ]]; then
    diff <(echo "$want") <(echo "$got") >"$LOGS/$CHECK.digest-diff"
    why "fetched messages in $1 differ from those delivered (see $LOGS/$CHECK.digest-diff)"
    return 1
  fi
}

# t_pop3_fetch PORT TLS AUTH: fetch everything, compare, fetch again.
t_pop3_fetch() {
  local port=$1 tls=$2 auth=$3 box=$P3/box-$2-$3 n
  n=$(find "$P3_SENT" -type f | wc -l)
  rm -rf "$box" "$box.uidl"
  p3_fetch first --server "$PEERS_HOST:$port" --tls "$tls" --auth "$auth" --maildir "$box"
  ((P3_RC == 0)) || why "first fetch exited $P3_RC: $(jq -r '.error.message // empty' "$P3_OUT")" || return 1
  jq -e --argjson n "$n" '.fetched == $n and .tls_used == true and .tls.version != null' "$P3_OUT" >/dev/null ||
    why "first fetch: expected $n messages over TLS, got $(jq -c '{fetched,tls_used,skipped}' "$P3_OUT")" || return 1
  p3_same "$box" || return 1
  p3_fetch second --server "$PEERS_HOST:$port" --tls "$tls" --auth "$auth" --maildir "$box"
  ((P3_RC == 0)) || why "second fetch exited $P3_RC" || return 1
  jq -e --argjson n "$n" '.fetched == 0 and .skipped == $n' "$P3_OUT" >/dev/null ||
    why "second fetch was not empty: $(jq -c '{fetched,skipped}' "$P3_OUT")" || return 1
  p3_same "$box"
}

t_pop3_mechanism() {
  # Dovecot logs the mechanism; our JSON report names it too.
  jq -e '[.security[] | select(.status == "open") | .info.mechanism // empty] | any(. == "SASL PLAIN" or . == "PLAIN")' \
    "$LOGS/pop3-fetch-pop3s-plain.second.json" >/dev/null 2>&1 ||
    jq -e '[.security[].name] | any(. == "AUTH PLAIN")' "$LOGS/pop3-fetch-pop3s-plain.second.json" >/dev/null ||
    why "the PLAIN run did not report AUTH PLAIN"
}

t_pop3_mbox() {
  local mbox=$P3/inbox.mbox n
  n=$(find "$P3_SENT" -type f | wc -l)
  rm -f "$mbox" "$mbox.uidl"
  p3_fetch mbox --server "$PEERS_HOST:$POP3S_PORT" --tls implicit --auth plain --mbox "$mbox"
  ((P3_RC == 0)) || why "fetch into mbox exited $P3_RC" || return 1
  [[ $(grep -c '^From ' "$mbox") == "$n" ]] || why "mbox has $(grep -c '^From ' "$mbox") separator lines, want $n" || return 1
  # mboxrd: the dot-message's lines come back unquoted, and nothing else
  # starts with "From ".
  grep -q '^\.\.two leading dots$' "$mbox" || why "dot-stuffed line altered in the mbox"
}

t_pop3_no_secret() {
  MAILSEC_PASSWORD=$CAROL_PASS timeout 120 "$BIN" fetch "${P3_COMMON[@]}" --server "$PEERS_HOST:$POP3_PORT" \
    --tls starttls --auth user --all --transcript --maildir "$P3/box-transcript" >"$LOGS/$CHECK.stdout" 2>"$LOGS/$CHECK.stderr" ||
    why "fetch --transcript failed" || return 1
  grep -q '^-> STLS' "$LOGS/$CHECK.stderr" && grep -q '^~> PASS \[credentials redacted\]' "$LOGS/$CHECK.stderr" ||
    why "transcript lacks STLS in plain and the redacted PASS under TLS" || return 1
  ! grep -qF "$CAROL_PASS" "$LOGS/$CHECK.stdout" "$LOGS/$CHECK.stderr" || why "the password appears in the output"
}

t_pop3_probe() {
  local port=$1 tls=$2 out=$LOGS/$CHECK.json
  timeout 60 "$BIN" probe --pop3 --server "$PEERS_HOST:$port" --tls "$tls" --ca-file "$CA_PEM" \
    --tls-server-name "$TLS_SERVER_NAME" --json >"$out" 2>"$LOGS/$CHECK.stderr" || why "probe exited $?" || return 1
  jq -e '.ok and .verified and (.after_tls.extensions | index("UIDL") != null) and .tls.version != null' "$out" >/dev/null ||
    why "probe report lacks CAPA under TLS or TLS facts: $(jq -c . "$out" | cut -c1-300)" || return 1
  if [[ $tls == starttls ]]; then
    jq -e '.before_tls.starttls and (.before_tls.extensions | index("STLS") != null) and (.after_tls.extensions | index("STLS") == null)' \
      "$out" >/dev/null || why "STLS probe: expected STLS before TLS and not after" || return 1
  else
    jq -e '.before_tls == null' "$out" >/dev/null || why "POP3S probe reported a plain-text stage"
  fi
}

t_pop3_delete() {
  local box=$P3/box-delete
  p3_fetch delete --server "$PEERS_HOST:$POP3S_PORT" --tls implicit --auth user --maildir "$box" --delete
  ((P3_RC == 0)) || why "fetch --delete exited $P3_RC" || return 1
  p3_same "$box" || return 1
  [[ -z $(find "$CAROL_MAILDIR/new" "$CAROL_MAILDIR/cur" -type f) ]] || why "messages left on the server after --delete"
}

t_pop3_setup() {
  rm -rf "$P3"
  mkdir -p "$P3_SENT"
  p3_clear
  local k f
  for k in random dots utf8 big; do
    f=$P3_SENT/$k.eml
    CHECK=pop3-$k mkmsg "$f" "$(newid)" "$k" || return 1
  done
  # The 20 MiB message: 76-character lines of base64, LF line ends.
  mkmsg "$P3_SENT/huge.eml" "$(newid)" random || return 1
  head -c $((15 * 1024 * 1024)) /dev/urandom | base64 -w 76 >>"$P3_SENT/huge.eml"
  [[ $(stat -c %s "$P3_SENT/huge.eml") -ge $((20 * 1024 * 1024)) ]] || why "huge message is under 20 MiB" || return 1
  local i=0
  for f in "$P3_SENT"/*.eml; do
    i=$((i + 1))
    install -o vmail -g vmail -m 0600 "$f" "$CAROL_MAILDIR/new/$(date +%s).M${i}P$$.interop" || return 1
  done
}

on_exit p3_clear
check pop3-setup t_pop3_setup
check pop3-fetch-stls-user t_pop3_fetch "$POP3_PORT" starttls user
check pop3-fetch-stls-plain t_pop3_fetch "$POP3_PORT" starttls plain
check pop3-fetch-pop3s-user t_pop3_fetch "$POP3S_PORT" implicit user
check pop3-fetch-pop3s-plain t_pop3_fetch "$POP3S_PORT" implicit plain
check pop3-plain-mechanism t_pop3_mechanism
check pop3-mbox t_pop3_mbox
check pop3-transcript-no-secret t_pop3_no_secret
check pop3-probe-stls t_pop3_probe "$POP3_PORT" starttls
check pop3-probe-pop3s t_pop3_probe "$POP3S_PORT" implicit
check pop3-delete t_pop3_delete
