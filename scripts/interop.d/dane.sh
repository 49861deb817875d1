# shellcheck shell=bash
# Interop section "dane": the relay's DANE (RFC 7672), MTA-STS (RFC 8461)
# and REQUIRETLS (RFC 8689) behaviour against a real DNSSEC set-up on
# loopback. Sourced by scripts/interop.sh (see there for check/why/skip/
# newid/wait_maildir/wait_port/on_exit). Select it alone with
# INTEROP_SECTIONS=dane.
#
# Infrastructure, everything below $W/dane ($DN_DIR), all on 127.0.0.0/8:
#   keys/zones  ldns-keygen / ldns-signzone (ldnsutils): one ECDSA P-256 key
#               (KSK flag, signs everything) per signed zone.
#     dane.test   signed, trust anchor = its DS: secure (AD).
#     bogus.test  signed, trust anchor = its DS, but two RRSIGs edited after
#                 signing: bogus.test/MX and _15025._tcp.mx.tlsa.bogus.test/
#                 TLSA are bogus (SERVFAIL), the rest validates.
#     plain.test  unsigned, no anchor: insecure (answers without AD); it even
#                 publishes a WRONG TLSA record, which must be ignored.
#     sts.test, badsts.test, teststs.test  unsigned, with MTA-STS TXT records.
#   NSD   authoritative for all six zones on 127.0.0.1:15353 (own config,
#         no chroot, no privilege drop, pid/log/state in $DN_DIR/nsd).
#   Unbound validating resolver on 127.0.0.1:15300 (unbound -d -c CONF),
#         module-config "validator iterator", a stub-zone per test zone to
#         NSD, trust-anchor-file = the DS of dane.test and bogus.test,
#         local-zone "test." nodefault (Unbound blocks test. otherwise), no
#         root anchor (so everything else is insecure).
#   PKI   openssl: a private CA ($DN_DIR/pki/ca.pem = relay.ca_file) and
#         leaves for the destinations and the MTA-STS web server.
#   D1    `mailsec serve` MX 127.0.0.20:15025 (tls may), user bob, domains
#         dane.test only.dane.test both.dane.test ta.dane.test mismatch.dane.test
#         bogus.test tlsa.bogus.test plain.test only.plain.test sts.test;
#         cert names mx.dane.test mx.ta.dane.test mx.mismatch.dane.test
#         mx.bogus.test mx.tlsa.bogus.test mx.plain.test other.sts.test
#         (chain leaf + CA, so that DANE-TA 2 0 1 can work).
#   SINK  python3 SMTP server without STARTTLS on 127.0.0.22:15025
#         (mx.stripped.dane.test), logs every command it gets.
#   NOREQ the same with STARTTLS (cert mx.noreq.dane.test) but without
#         REQUIRETLS, on 127.0.0.25:15025.
#   D3    `mailsec serve` MX 127.0.0.23:15025, cert mx.sts.test, sts.test.
#   D4    `mailsec serve` MX 127.0.0.24:15025, cert names only wrong.example,
#         badsts.test teststs.test.
#   WEB   python3 HTTPS on 127.0.0.30:443 (mta-sts.sts.test,
#         mta-sts.badsts.test, mta-sts.teststs.test, mta-sts.both.dane.test): /.well-known/mta-sts.txt by Host header.
#   R     the relay under test: `mailsec serve`, submission 127.0.0.1:15587,
#         domain origin.test, user alice; [relay] resolver = Unbound,
#         port = 15025, tls = "dane", ca_file = the private CA, backoff 1s..2s;
#         routes only.dane.test and only.plain.test tls = "dane-only". If R
#         refuses that configuration (feature not there yet) it is started
#         with tls = "may" and no routes, and the checks say so.
#
# DNS data (TTL 60):
#   dane.test        MX 10 mx.dane.test; mx A 127.0.0.20;
#                    _15025._tcp.mx TLSA 3 1 1 sha256(D1 SPKI)       dane-match
#   only.dane.test   MX 10 mx.dane.test (route dane-only)            dane-only-secure
#   ta.dane.test     MX 10 mx.ta.dane.test; A .20; TLSA 2 0 1 sha256(CA cert) dane-ta
#   mismatch.dane.test MX mx.mismatch.dane.test; A .20; TLSA 3 1 1 WRONG dane-mismatch
#   stripped.dane.test MX mx.stripped.dane.test; A .22 (SINK); TLSA 3 1 1 D1 dane-stripped
#   both.dane.test   MX mx.both.dane.test; A .20; TLSA 3 1 1 D1; and MTA-STS
#                    enforce with "mx: elsewhere.example": DANE wins    dane-over-sts
#   noreq.dane.test  MX mx.noreq.dane.test; A .25 (NOREQ); TLSA 3 1 1 NOREQ
#                    dane-noreq-control-delivered, requiretls-no-ext-bounce
#   bogus.test       MX (RRSIG broken) mx.bogus.test; A .20; TLSA ok  dane-bogus-mx
#   tlsa.bogus.test  MX mx.tlsa.bogus.test; A .20; TLSA (RRSIG broken) dane-bogus-tlsa
#   plain.test       MX 10 mx.plain.test; A .20; TLSA 3 1 1 WRONG (insecure) dane-unsigned
#   only.plain.test  MX 10 mx.plain.test (route dane-only)           dane-only-unsigned
#   sts.test         MX 5 other.sts.test (.20, NOT in the policy, cert valid)
#                    MX 10 mx.sts.test (.23, in the policy); _mta-sts TXT;
#                    mta-sts A 127.0.0.30                             sts-mx-not-in-policy, sts-cache
#   badsts.test      MX 10 mx.badsts.test (.24, cert wrong.example); policy
#                    enforce mx: mx.badsts.test                       sts-enforce-badcert
#   teststs.test     the same, policy mode testing                    sts-testing-badcert-delivered
#
# Checks: dane-setup (packages, PKI, zones, NSD, Unbound, destinations),
# dane-dns-dig (AD / SERVFAIL / no AD as designed, with dig +dnssec),
# dane-infra-https-smtp (curl the policy, openssl s_client the MX hosts),
# dane-relay-start, then one check per row above ("delivered": in the right
# Maildir, attempt line tls_policy/tls_cert as expected; "deferred": tried at
# least twice, last_error in `queue list --json`, never delivered, then
# deleted from the queue), requiretls-* (mailsec send --require-tls: bounce
# with Status 5.7.30 in alice's Maildir, or delivery under DANE), probe-mx*
# (mailsec probe --mx DOMAIN --json with R's config or explicit flags).
# About 45 s once the packages are installed.

DN_DIR=$W/dane
DN_NSD_PORT=15353 DN_UB_PORT=15300 DN_MXPORT=15025 DN_SUB=15587
DN_D1_IP=127.0.0.20 DN_SINK_IP=127.0.0.22 DN_NOREQ_IP=127.0.0.25 DN_D3_IP=127.0.0.23 DN_D4_IP=127.0.0.24 DN_WEB_IP=127.0.0.30
DN_PKI=$DN_DIR/pki
DN_CA=$DN_PKI/ca.pem
DN_R=$DN_DIR/r DN_D1=$DN_DIR/d1 DN_D3=$DN_DIR/d3 DN_D4=$DN_DIR/d4 DN_SINKD=$DN_DIR/sink DN_NOREQ=$DN_DIR/noreq DN_WEB=$DN_DIR/web
DN_RCA=$DN_R/data/tls/ca.pem
DN_ALICE_PASS='dn-Al1ce pass!'
DN_BOB_PASS='dn-b0b'
DN_PACKAGES=(nsd unbound ldnsutils bind9-dnsutils openssl curl python3 jq)
DN_STS_ID=20261203T1
DN_ZONES=(dane.test bogus.test plain.test sts.test badsts.test teststs.test)

# ---------------------------------------------------------------- helpers

# dn_cleanup: stop everything of this section
dn_cleanup() { kill_pidfiles "$DN_DIR"/*/pid; }

# dn_install: the packages, by scripts/peers.sh (no system daemon started)
dn_install() {
  "$PEERS" install "${DN_PACKAGES[@]}" >"$LOGS/$CHECK.install.log" 2>&1 ||
    why "peers.sh install ${DN_PACKAGES[*]} failed: $(tail -n 2 "$LOGS/$CHECK.install.log" | tr '\n' ' ')"
}

# dn_bg DIR CMD...: run CMD in the background, pid in DIR/pid, output in DIR/out.log
dn_bg() {
  local dir=$1
  shift
  "$@" >>"$dir/out.log" 2>&1 &
  echo $! >"$dir/pid"
}

# dn_spki CERT: the hex SHA-256 of the certificate's SubjectPublicKeyInfo
dn_spki() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -hex | awk '{print $NF}'; }

# dn_leaf NAME SAN...: a leaf key and certificate of the private CA
dn_leaf() {
  local name=$1 san="" n
  shift
  for n in "$@"; do san+=${san:+,}DNS:$n; done
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DN_PKI/$name.key" \
    -subj "/CN=$1" -out "$DN_PKI/$name.csr" 2>>"$DN_PKI/openssl.log" || return 1
  openssl x509 -req -in "$DN_PKI/$name.csr" -CA "$DN_CA" -CAkey "$DN_PKI/ca.key" -CAcreateserial -days 30 \
    -extfile <(printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' "$san") \
    -out "$DN_PKI/$name.pem" 2>>"$DN_PKI/openssl.log" || return 1
  cat "$DN_PKI/$name.pem" "$DN_CA" >"$DN_PKI/$name.chain.pem"
}

dn_pki() {
  mkdir -p "$DN_PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DN_PKI/ca.key" -days 30 \
    -subj "/CN=mailsec dane interop CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign -out "$DN_CA" 2>>"$DN_PKI/openssl.log" || why "CA: $(tail -n 2 "$DN_PKI/openssl.log")" || return 1
  dn_leaf d1 mx.dane.test mx.ta.dane.test mx.mismatch.dane.test mx.bogus.test mx.tlsa.bogus.test mx.plain.test other.sts.test || why "d1 cert" || return 1
  dn_leaf d3 mx.sts.test || why "d3 cert" || return 1
  dn_leaf noreq mx.noreq.dane.test || why "noreq cert" || return 1
  dn_leaf d4 wrong.example || why "d4 cert" || return 1
  dn_leaf web mta-sts.sts.test mta-sts.badsts.test mta-sts.teststs.test mta-sts.both.dane.test || why "web cert" || return 1
  # a key nobody serves: the digest of the mismatch TLSA records
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DN_PKI/other.key" 2>>"$DN_PKI/openssl.log" || return 1
  chmod 644 "$DN_PKI"/*
}

# ---------------------------------------------------------------- DNS

dn_zonefile() { # NAME: the SOA/NS head of a zone
  cat <<EOF
\$ORIGIN $1.
\$TTL 60
@ IN SOA ns.$1. hostmaster.$1. 1 3600 600 86400 60
@ IN NS ns.$1.
ns IN A 127.0.0.1
EOF
}

# dn_sts_records [SUFFIX]: the MTA-STS TXT record and the policy host's
# address (the web server) of the zone's apex, or of SUFFIX below it
dn_sts_records() {
  printf '_mta-sts%s IN TXT "v=STSv1; id=%s"\nmta-sts%s IN A %s\n' "${1:-}" "$DN_STS_ID" "${1:-}" "$DN_WEB_IP"
}

dn_zones() {
  local z=$DN_DIR/zones d1 wrong ca201 noreq zone key
  mkdir -p "$z" "$DN_DIR/keys"
  d1=$(dn_spki "$DN_PKI/d1.pem") || return 1
  wrong=$(openssl pkey -in "$DN_PKI/other.key" -pubout -outform DER | openssl dgst -sha256 -hex | awk '{print $NF}')
  ca201=$(openssl x509 -in "$DN_CA" -outform DER | openssl dgst -sha256 -hex | awk '{print $NF}')
  noreq=$(dn_spki "$DN_PKI/noreq.pem") || return 1
  echo "$d1" >"$DN_DIR/d1.spki"
  echo "$wrong" >"$DN_DIR/wrong.spki"
  { dn_zonefile dane.test; cat <<EOF
@ IN MX 10 mx.dane.test.
mx IN A $DN_D1_IP
_$DN_MXPORT._tcp.mx IN TLSA 3 1 1 $d1
only IN MX 10 mx.dane.test.
ta IN MX 10 mx.ta.dane.test.
mx.ta IN A $DN_D1_IP
_$DN_MXPORT._tcp.mx.ta IN TLSA 2 0 1 $ca201
mismatch IN MX 10 mx.mismatch.dane.test.
mx.mismatch IN A $DN_D1_IP
_$DN_MXPORT._tcp.mx.mismatch IN TLSA 3 1 1 $wrong
stripped IN MX 10 mx.stripped.dane.test.
mx.stripped IN A $DN_SINK_IP
_$DN_MXPORT._tcp.mx.stripped IN TLSA 3 1 1 $d1
noreq IN MX 10 mx.noreq.dane.test.
mx.noreq IN A $DN_NOREQ_IP
_$DN_MXPORT._tcp.mx.noreq IN TLSA 3 1 1 $noreq
both IN MX 10 mx.both.dane.test.
mx.both IN A $DN_D1_IP
_$DN_MXPORT._tcp.mx.both IN TLSA 3 1 1 $d1
EOF
    dn_sts_records .both
  } >"$z/dane.test.zone"
  { dn_zonefile bogus.test; cat <<EOF
@ IN MX 10 mx.bogus.test.
mx IN A $DN_D1_IP
_$DN_MXPORT._tcp.mx IN TLSA 3 1 1 $d1
tlsa IN MX 10 mx.tlsa.bogus.test.
mx.tlsa IN A $DN_D1_IP
_$DN_MXPORT._tcp.mx.tlsa IN TLSA 3 1 1 $d1
EOF
  } >"$z/bogus.test.zone"
  { dn_zonefile plain.test; cat <<EOF
@ IN MX 10 mx.plain.test.
mx IN A $DN_D1_IP
_$DN_MXPORT._tcp.mx IN TLSA 3 1 1 $wrong
only IN MX 10 mx.plain.test.
EOF
  } >"$z/plain.test.zone"
  { dn_zonefile sts.test; cat <<EOF
@ IN MX 5 other.sts.test.
@ IN MX 10 mx.sts.test.
other IN A $DN_D1_IP
mx IN A $DN_D3_IP
EOF
    dn_sts_records
  } >"$z/sts.test.zone"
  # badsts.test and teststs.test: the same records (their policies, in dn_web, differ in mode)
  for zone in badsts.test teststs.test; do
    { dn_zonefile "$zone"; printf '@ IN MX 10 mx.%s.\nmx IN A %s\n' "$zone" "$DN_D4_IP"; dn_sts_records; } >"$z/$zone.zone"
  done
  for zone in dane.test bogus.test; do
    key=$(cd "$DN_DIR/keys" && ldns-keygen -a ECDSAP256SHA256 -k "$zone" 2>>"$DN_DIR/keys/keygen.log") || why "ldns-keygen $zone: $(tail -n 1 "$DN_DIR/keys/keygen.log")" || return 1
    ldns-signzone -f "$z/$zone.zone.signed" "$z/$zone.zone" "$DN_DIR/keys/$key" >>"$DN_DIR/keys/sign.log" 2>&1 ||
      why "ldns-signzone $zone: $(tail -n 2 "$DN_DIR/keys/sign.log")" || return 1
    cat "$DN_DIR/keys/$key.ds" >>"$DN_DIR/trust-anchors.ds"
  done
  # Break two signatures of bogus.test: one character in the middle of the
  # base64 of the RRSIGs covering bogus.test/MX and the mx.tlsa TLSA RRset.
  awk -v t="_$DN_MXPORT._tcp.mx.tlsa.bogus.test." 'BEGIN { OFS = "\t" }
    $4 == "RRSIG" && (($1 == "bogus.test." && $5 == "MX") || ($1 == t && $5 == "TLSA")) {
      s = $NF; c = substr(s, 20, 1); r = (c == "A") ? "B" : "A"
      $NF = substr(s, 1, 19) r substr(s, 21); n++ }
    { print } END { if (n != 2) { print "broke " n " signatures, want 2" > "/dev/stderr"; exit 1 } }' \
    "$z/bogus.test.zone.signed" >"$z/bogus.test.zone.broken" || why "could not break the bogus.test signatures" || return 1
  mv "$z/bogus.test.zone.broken" "$z/bogus.test.zone.signed"
}

# dn_wait_dns NAME DIR PORT ZONE: wait up to 10 s until the server NAME
# started by dn_bg in DIR (log DIR/NAME.log) answers SOA ZONE on 127.0.0.1:PORT
dn_wait_dns() {
  local name=$1 dir=$2 port=$3 i
  for ((i = 0; i < 50; i++)); do
    [[ -n $(dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" SOA "$4" 2>/dev/null) ]] && return 0
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || why "$name exited: $(tail -n 3 "$dir/out.log" "$dir/$name.log" 2>/dev/null | tr '\n' ' ')" || return 1
    sleep 0.2
  done
  why "$name does not answer on 127.0.0.1:$port: $(tail -n 3 "$dir/$name.log" 2>/dev/null | tr '\n' ' ')"
}

dn_nsd() {
  local n=$DN_DIR/nsd zone f
  mkdir -p "$n"
  cat >"$n/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@$DN_NSD_PORT
  port: $DN_NSD_PORT
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "$DN_DIR/zones"
  database: ""
  pidfile: "$n/nsd.pid"
  xfrdfile: "$n/xfrd.state"
  xfrdir: "$n"
  zonelistfile: "$n/zone.list"
  logfile: "$n/nsd.log"
  server-count: 1
  verbosity: 2
remote-control:
  control-enable: no
EOF
  for zone in "${DN_ZONES[@]}"; do
    f=$zone.zone
    [[ -e $DN_DIR/zones/$zone.zone.signed ]] && f=$zone.zone.signed
    printf 'zone:\n  name: "%s"\n  zonefile: "%s"\n' "$zone" "$f" >>"$n/nsd.conf"
    nsd-checkzone "$zone" "$DN_DIR/zones/$f" >>"$n/checkzone.log" 2>&1 || why "nsd-checkzone $zone: $(tail -n 1 "$n/checkzone.log")" || return 1
  done
  nsd-checkconf "$n/nsd.conf" >"$n/checkconf.log" 2>&1 || why "nsd-checkconf: $(tail -n 2 "$n/checkconf.log")" || return 1
  dn_bg "$n" nsd -d -c "$n/nsd.conf"
  dn_wait_dns nsd "$n" "$DN_NSD_PORT" dane.test
}

dn_unbound() {
  local u=$DN_DIR/unbound zone
  mkdir -p "$u"
  cat >"$u/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$DN_UB_PORT
  port: $DN_UB_PORT
  do-ip6: no
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  username: ""
  chroot: ""
  directory: "$u"
  pidfile: "$u/unbound.pid"
  use-syslog: no
  logfile: "$u/unbound.log"
  verbosity: 1
  val-log-level: 2
  log-servfail: yes
  module-config: "validator iterator"
  trust-anchor-file: "$DN_DIR/trust-anchors.ds"
  trust-anchor-signaling: no
  root-key-sentinel: no
  qname-minimisation: no
  local-zone: "test." nodefault
  cache-max-ttl: 60
  num-threads: 1
remote-control:
  control-enable: no
EOF
  for zone in "${DN_ZONES[@]}"; do
    printf 'stub-zone:\n  name: "%s"\n  stub-addr: 127.0.0.1@%s\n' "$zone" "$DN_NSD_PORT" >>"$u/unbound.conf"
  done
  unbound-checkconf "$u/unbound.conf" >"$u/checkconf.log" 2>&1 || why "unbound-checkconf: $(tail -n 2 "$u/checkconf.log")" || return 1
  dn_bg "$u" unbound -d -c "$u/unbound.conf"
  dn_wait_dns unbound "$u" "$DN_UB_PORT" plain.test
}

# dn_dig NAME TYPE: dig through Unbound with DO; output in $DN_DIG
dn_dig() {
  DN_DIG=$(dig +dnssec +time=3 +tries=2 @127.0.0.1 -p "$DN_UB_PORT" "$1" "$2" 2>&1)
  printf '; dig %s %s\n%s\n' "$1" "$2" "$DN_DIG" >>"$LOGS/$CHECK.dig"
}
dn_status() { sed -n 's/.*status: \([A-Z]*\).*/\1/p' <<<"$DN_DIG" | head -n 1; }
dn_ad() { grep -E '^;; flags:' <<<"$DN_DIG" | head -n 1 | grep -qw ad; }

# dn_expect NAME TYPE STATUS AD(1/0/-) [ANSWER-PATTERN]
dn_expect() {
  local st
  dn_dig "$1" "$2"
  st=$(dn_status)
  [[ $st == "$3" ]] || why "$1 $2: status $st, want $3" || return 1
  if [[ $4 == 1 ]]; then dn_ad || why "$1 $2: no ad flag: $(grep '^;; flags' <<<"$DN_DIG")" || return 1; fi
  if [[ $4 == 0 ]]; then ! dn_ad || why "$1 $2: ad flag set on insecure data" || return 1; fi
  if [[ -n ${5:-} ]]; then
    grep -v '^;' <<<"$DN_DIG" | grep -Eiq -- "$5" || why "$1 $2: answer lacks /$5/" || return 1
  fi
  printf '%-36s %-5s %-8s ad=%s\n' "$1" "$2" "$st" "$(dn_ad && echo 1 || echo 0)"
}

t_dn_dns() {
  local d1
  d1=$(cat "$DN_DIR/d1.spki")
  dn_expect dane.test MX NOERROR 1 'MX[[:space:]]+10 mx\.dane\.test' || return 1
  dn_expect mx.dane.test A NOERROR 1 "$DN_D1_IP" || return 1
  dn_expect "_$DN_MXPORT._tcp.mx.dane.test" TLSA NOERROR 1 "TLSA[[:space:]]+3 1 1 ${d1:0:16}" || return 1
  dn_expect "_$DN_MXPORT._tcp.mx.ta.dane.test" TLSA NOERROR 1 'TLSA[[:space:]]+2 0 1' || return 1
  dn_expect "_$DN_MXPORT._tcp.mx.mismatch.dane.test" TLSA NOERROR 1 'TLSA[[:space:]]+3 1 1' || return 1
  dn_expect "_$DN_MXPORT._tcp.mx.stripped.dane.test" TLSA NOERROR 1 'TLSA[[:space:]]+3 1 1' || return 1
  dn_expect nothere.dane.test A NXDOMAIN 1 || return 1
  dn_expect bogus.test MX SERVFAIL - || return 1
  dn_expect mx.bogus.test A NOERROR 1 || return 1
  dn_expect tlsa.bogus.test MX NOERROR 1 || return 1
  dn_expect "_$DN_MXPORT._tcp.mx.tlsa.bogus.test" TLSA SERVFAIL - || return 1
  dn_expect plain.test MX NOERROR 0 'mx\.plain\.test' || return 1
  dn_expect mx.plain.test A NOERROR 0 "$DN_D1_IP" || return 1
  dn_expect "_$DN_MXPORT._tcp.mx.plain.test" TLSA NOERROR 0 'TLSA' || return 1
  dn_expect sts.test MX NOERROR 0 'other\.sts\.test' || return 1
  dn_expect _mta-sts.sts.test TXT NOERROR 0 'v=STSv1' || return 1
  dn_expect mta-sts.sts.test A NOERROR 0 "$DN_WEB_IP" || return 1
  dn_expect mx.badsts.test A NOERROR 0 "$DN_D4_IP" || return 1
  # Unbound's own words about the bogus data
  grep -E 'validation failure|bogus' "$DN_DIR/unbound/unbound.log" | head -n 3
}

# ---------------------------------------------------------------- peers

# dn_conf_head DIR DOMAINS HOSTNAME: the top of a serve.toml
dn_conf_head() {
  cat <<EOF
data_dir = "$1/data"
hostname = "$3"
domains = [$2]

[limits]
auth_failure_delay = "100ms"
shutdown_timeout = "5s"
EOF
}

# dn_dest DIR IP CERT DOMAINS: a destination serve with one MX listener
dn_dest() {
  local dir=$1
  mkdir -p "$dir"
  {
    dn_conf_head "$dir" "$4" "$(basename "$dir").dest.test"
    printf '\n[tls]\ncert = "%s"\nkey = "%s"\n' "$DN_PKI/$3.chain.pem" "$DN_PKI/$3.key"
    printf '\n[[listener]]\nname = "mx"\naddress = "%s:%s"\nkind = "mx"\ntls = "may"\n' "$2" "$DN_MXPORT"
  } >"$dir/serve.toml"
  printf '%s' "$DN_BOB_PASS" | "$BIN" users add bob --data "$dir/data" >>"$dir/users.log" 2>&1 ||
    why "users add bob ($dir): $(tail -n 1 "$dir/users.log")" || return 1
  serve_start "$dir" "$2" "$DN_MXPORT"
}

# dn_sink DIR IP NAME [CERT KEY]: a python3 SMTP server on IP:15025 that
# logs every command in DIR/commands.log and stores messages in DIR/msgs/new;
# STARTTLS (never REQUIRETLS) only when given a certificate
dn_sink() {
  local dir=$1
  mkdir -p "$dir/msgs/new" "$dir/msgs/cur"
  cat >"$dir/sink.py" <<'EOF'
import os, socketserver, ssl, sys, time
host, port, DIR, NAME = sys.argv[1:5]
ctx = None
if len(sys.argv) > 6:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
def log(s):
    with open(os.path.join(DIR, "commands.log"), "a") as f:
        f.write(s + "\n")
class H(socketserver.StreamRequestHandler):
    def handle(self):
        tls = False
        def w(s):
            self.wfile.write(s.encode() + b"\r\n")
            self.wfile.flush()
        log("connect %s" % (self.client_address,))
        w("220 %s ESMTP sink" % NAME)
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("ascii", "replace").strip()
            log(("tls " if tls else "") + cmd)
            verb = cmd[:4].upper()
            if verb == "EHLO":
                w("250-" + NAME); w("250-8BITMIME")
                if ctx and not tls:
                    w("250-STARTTLS")
                w("250 ENHANCEDSTATUSCODES")
            elif verb == "HELO":
                w("250 " + NAME)
            elif verb == "STAR" and ctx and not tls:
                w("220 2.0.0 go ahead")
                self.request = ctx.wrap_socket(self.request, server_side=True)
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
                tls = True
                log("tls established %s" % self.request.version())
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                if verb == "MAIL" and "REQUIRETLS" in cmd.upper():
                    w("555 5.5.4 REQUIRETLS not supported")
                else:
                    w("250 2.0.0 ok")
            elif verb == "DATA":
                w("354 go ahead")
                data = []
                while True:
                    l = self.rfile.readline()
                    if not l or l == b".\r\n":
                        break
                    data.append(l[1:] if l.startswith(b".") else l)
                name = "%d.eml" % time.time_ns()
                with open(os.path.join(DIR, "msgs", "tmp." + name), "wb") as f:
                    f.write(b"".join(data))
                os.rename(os.path.join(DIR, "msgs", "tmp." + name), os.path.join(DIR, "msgs", "new", name))
                w("250 2.0.0 stored")
            elif verb == "QUIT":
                w("221 2.0.0 bye")
                return
            else:
                w("502 5.5.2 not implemented")
class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
S((host, int(port)), H).serve_forever()
EOF
  dn_bg "$dir" python3 "$dir/sink.py" "$2" "$DN_MXPORT" "$dir" "$3" "${@:4}"
  wait_port "$2" "$DN_MXPORT" 50 0.1 || why "SMTP sink $3 does not listen: $(tail -n 2 "$dir/out.log")"
}

dn_web() {
  mkdir -p "$DN_WEB"
  cat >"$DN_WEB/web.py" <<'EOF'
# MTA-STS policy server: HTTPS, policy chosen by the Host header.
import http.server, ssl, sys
host, port, cert, key, logf = sys.argv[1:6]
POLICIES = {
    "mta-sts.sts.test": "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n",
    "mta-sts.badsts.test": "version: STSv1\nmode: enforce\nmx: mx.badsts.test\nmax_age: 86400\n",
    "mta-sts.both.dane.test": "version: STSv1\nmode: enforce\nmx: elsewhere.example\nmax_age: 86400\n",
    "mta-sts.teststs.test": "version: STSv1\nmode: testing\nmx: mx.teststs.test\nmax_age: 86400\n",
}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        h = (self.headers.get("Host") or "").split(":")[0].lower()
        with open(logf, "a") as f:
            f.write("GET host=%s path=%s ua=%s\n" % (h, self.path, (self.headers.get("User-Agent") or "-").replace(" ", "_")))
        body = POLICIES.get(h)
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_error(404)
            return
        b = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.ThreadingHTTPServer((host, int(port)), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
  dn_bg "$DN_WEB" python3 "$DN_WEB/web.py" "$DN_WEB_IP" 443 "$DN_PKI/web.chain.pem" "$DN_PKI/web.key" "$DN_WEB/requests.log"
  wait_port "$DN_WEB_IP" 443 50 0.1 || why "MTA-STS web server does not listen: $(tail -n 2 "$DN_WEB/out.log")"
}

# dn_conf_r POLICY ROUTES(1/0): R's configuration
dn_conf_r() {
  {
    dn_conf_head "$DN_R" '"origin.test"' "relay.origin.test"
    printf '\n[[listener]]\nname = "submission"\naddress = "127.0.0.1:%s"\nkind = "submission"\n' "$DN_SUB"
    cat <<EOF

[relay]
enabled = true
resolver = "127.0.0.1:$DN_UB_PORT"
port = $DN_MXPORT
tls = "$1"
ca_file = "$DN_CA"
backoff_min = "1s"
backoff_max = "2s"
connect_timeout = "5s"
command_timeout = "20s"
EOF
    if [[ $2 == 1 ]]; then
      printf '\n[[relay.route]]\ndomain = "%s"\ntls = "dane-only"\n' only.dane.test only.plain.test
    fi
  } >"$DN_R/serve.toml"
}

t_dn_setup() {
  need_bin || return 1
  dn_install || return 1
  dn_cleanup >/dev/null 2>&1
  rm -rf "$DN_DIR"
  mkdir -p "$DN_DIR" "$DN_R" "$DN_SINKD" "$DN_WEB"
  dn_pki || return 1
  dn_zones || return 1
  dn_nsd || return 1
  dn_unbound || return 1
  dn_dest "$DN_D1" "$DN_D1_IP" d1 '"dane.test", "only.dane.test", "both.dane.test", "ta.dane.test", "mismatch.dane.test", "bogus.test", "tlsa.bogus.test", "plain.test", "only.plain.test", "sts.test"' || return 1
  dn_dest "$DN_D3" "$DN_D3_IP" d3 '"sts.test"' || return 1
  dn_dest "$DN_D4" "$DN_D4_IP" d4 '"badsts.test", "teststs.test"' || return 1
  dn_sink "$DN_SINKD" "$DN_SINK_IP" mx.stripped.dane.test || return 1
  dn_sink "$DN_NOREQ" "$DN_NOREQ_IP" mx.noreq.dane.test "$DN_PKI/noreq.chain.pem" "$DN_PKI/noreq.key" || return 1
  dn_web || return 1
  echo "nsd 127.0.0.1:$DN_NSD_PORT, unbound 127.0.0.1:$DN_UB_PORT, trust anchors:"
  cat "$DN_DIR/trust-anchors.ds"
  echo "D1 SPKI sha256 $(cat "$DN_DIR/d1.spki")"
  touch "$DN_DIR/setup.ok"
}

# R: with tls = "dane" and dane-only routes; if refused, plain "may" so
# that the rest still runs (and says why).
t_dn_relay() {
  need_bin || return 1
  printf '%s' "$DN_ALICE_PASS" | "$BIN" users add alice --data "$DN_R/data" >>"$DN_R/users.log" 2>&1 ||
    why "users add alice: $(tail -n 1 "$DN_R/users.log")" || return 1
  dn_conf_r dane 1
  if serve_start "$DN_R" 127.0.0.1 "$DN_SUB"; then
    echo full >"$DN_DIR/relay.mode"
    return 0
  fi
  local reason
  reason=$(tail -n 3 "$DN_R/serve.log" | tr '\n' ' ')
  echo "$reason" >"$DN_DIR/relay.refused"
  : >"$LOGS/$CHECK.reason"
  dn_conf_r may 0
  serve_start "$DN_R" 127.0.0.1 "$DN_SUB" || return 1
  echo fallback >"$DN_DIR/relay.mode"
  why "R refused tls = \"dane\" / dane-only routes (started with tls = \"may\" instead): $reason"
}

# dn_full: R runs the configuration under test
dn_full() {
  [[ $(cat "$DN_DIR/relay.mode" 2>/dev/null) == full ]] ||
    why "R runs the fallback configuration (tls = \"may\", no routes): $(cat "$DN_DIR/relay.refused" 2>/dev/null)"
}

# dn_if_full CMD...: CMD, once dn_full says R runs the configuration under test
dn_if_full() { dn_full || return 1; "$@"; }

# dn_send TO ID [ARGS...]: submit a message for TO as alice through R;
# DN_BASE = R's attempt lines for TO before it (see dn_new)
dn_send() {
  local to=$1 id=$2 msg=$MSGS/$CHECK.$2.eml out=$LOGS/$CHECK.send.json rc
  shift 2
  relay_msg "$msg" "Alice <alice@origin.test>" "$to" "$id"
  DN_BASE=$(dn_attempts "$to" | wc -l)
  relay_submit "127.0.0.1:$DN_SUB" "$DN_ALICE_PASS" "$DN_RCA" alice@origin.test "$to" "$msg" "$out" "$@"
  rc=$?
  ((rc == 0)) || submit_failed "$rc" "$to" R "$out"
}

dn_queue() { queue_json "$DN_R/data" "$@"; }
dn_qentry() { queue_entry "$DN_R/data" "$1"; }

# dn_attempts RCPT: R's "delivery attempt" lines for RCPT
dn_attempts() { grep -F 'msg="delivery attempt"' "$DN_R/serve.log" | grep -F "to=$1 "; }
# dn_new RCPT: those that came after the last dn_send
dn_new() { dn_attempts "$1" | tail -n +$((DN_BASE + 1)); }

# dn_outcome RCPT SECONDS: wait until RCPT is delivered, bounced or deferred
# (attempts >= 2, so that a retry was also refused); sets DN_RESULT
# (delivered/bounced/deferred/none) and DN_LINE (last attempt line)
dn_outcome() {
  local i e
  DN_RESULT=none DN_LINE=
  for ((i = 0; i < $2 * 4; i++)); do
    DN_LINE=$(dn_new "$1" | tail -n 1)
    case $DN_LINE in
      *" result=delivered "*) DN_RESULT=delivered; return 0 ;;
      *" result=bounced "*) DN_RESULT=bounced; return 0 ;;
    esac
    if [[ $DN_LINE == *" result=deferred "* ]] && (($(dn_new "$1" | wc -l) >= 2)); then
      DN_RESULT=deferred
      return 0
    fi
    sleep 0.25
  done
  [[ $DN_LINE == *" result=deferred "* ]] && DN_RESULT=deferred
  return 0
}


# dn_in DIR ID: the message is in the Maildir DIR (short wait)
dn_in() { wait_maildir "$1" "$2" "${3:-1}" >/dev/null; }

# t_dn_delivered TO MAILDIR WANT_POLICY WANT_CERT [NOT_MAILDIR [SEND ARGS...]]: delivered
# into MAILDIR; the attempt line shows tls_policy WANT_POLICY (a regex) and
# tls_cert matching WANT_CERT (a regex; "" = anything)
t_dn_delivered() {
  local to=$1 dir=$2 pol=$3 cert=$4 not=${5:-} id f
  shift 4
  (($# > 0)) && shift
  id=$(newid)
  dn_send "$to" "$id" "$@" || return 1
  dn_outcome "$to" 30
  echo "attempt: $DN_LINE"
  [[ $DN_RESULT == delivered ]] || why "result $DN_RESULT, want delivered: ${DN_LINE:0:300}" || return 1
  if ! f=$(wait_maildir "$dir" "$id" 15); then
    why "R delivered to $(grep -o ' host=[^ ]* addr=[^ ]*' <<<"$DN_LINE"), but <$id> is not in $dir$( [[ -n $not ]] && dn_in "$not" "$id" && printf ' (it is in %s)' "$not")"
    return 1
  fi
  if [[ -n $not ]] && dn_in "$not" "$id"; then why "delivered to $not too"; return 1; fi
  [[ $DN_LINE =~ \ tls_policy=\"?($pol)[\"\ ] ]] || why "tls_policy not /$pol/: $DN_LINE" || return 1
  [[ $DN_LINE =~ \ tls_version=\"?TLS ]] || why "not delivered over TLS: $DN_LINE" || return 1
  if [[ -n $cert ]]; then
    [[ $DN_LINE =~ \ tls_cert=\"?($cert) ]] || why "tls_cert not /$cert/: $DN_LINE" || return 1
  fi
  return 0
}

# t_dn_refused TO MAILDIR [CODE-REGEX]: never delivered; deferred (tried at
# least twice), with a last_error in the queue
t_dn_refused() {
  local to=$1 dir=$2 code=${3:-} id e
  id=$(newid)
  dn_send "$to" "$id" || return 1
  dn_outcome "$to" 30
  echo "attempt: $DN_LINE"
  e=$(dn_qentry "$to")
  echo "queue: $e"
  if dn_in "$dir" "$id"; then why "delivered to $dir ($DN_RESULT): ${DN_LINE:0:300}"; return 1; fi
  [[ $DN_RESULT != delivered ]] || why "R logged result=delivered: ${DN_LINE:0:300}" || return 1
  [[ $DN_RESULT == deferred ]] || why "result $DN_RESULT, want deferred (temporary, RFC 7672 / 8461): ${DN_LINE:0:300}" || return 1
  [[ -n $e ]] && jq -e '.last_error != null' <<<"$e" >/dev/null || why "queue entry without last_error: $e" || return 1
  if [[ -n $code ]]; then
    jq -r '.last_error | tostring' <<<"$e" | grep -Eiq -- "$code" || why "last_error $(jq -c .last_error <<<"$e"), want /$code/" || return 1
  fi
  # out of the queue, so that R stops retrying it
  dn_queue delete "$(jq -r .id <<<"$e")" || why "queue delete failed: $(tail -n 1 "$Q.stderr")"
}

# ---------------------------------------------------------------- checks

DN_BOBD1=$DN_D1/data/mail/bob DN_BOBD3=$DN_D3/data/mail/bob DN_BOBD4=$DN_D4/data/mail/bob

on_exit dn_cleanup
check dane-setup t_dn_setup
if [[ ! -e $DN_DIR/setup.ok ]]; then
  skip dane-rest "the DNSSEC/MTA-STS infrastructure did not come up (see FAIL dane-setup)"
  return 0
fi
check dane-dns-dig t_dn_dns

t_dn_web_curl() {
  local out
  out=$(curl -sS --max-time 10 -A dane-interop-curl --cacert "$DN_CA" --resolve "mta-sts.sts.test:443:$DN_WEB_IP" \
    -D "$LOGS/$CHECK.headers" https://mta-sts.sts.test/.well-known/mta-sts.txt 2>&1) || why "curl: $out" || return 1
  echo "$out"
  grep -qi '^content-type: text/plain' "$LOGS/$CHECK.headers" || why "no Content-Type text/plain" || return 1
  [[ $out == *"mode: enforce"* && $out == *"mx: mx.sts.test"* ]] || why "unexpected policy: $out" || return 1
  # the destinations' certificates, as the relay will see them
  local ip name
  for ip in $DN_D1_IP:mx.dane.test $DN_D3_IP:mx.sts.test; do
    name=${ip#*:} ip=${ip%%:*}
    echo | timeout 10 openssl s_client -connect "$ip:$DN_MXPORT" -starttls smtp -servername "$name" -CAfile "$DN_CA" \
      -verify_hostname "$name" -verify_return_error >"$LOGS/$CHECK.s_client" 2>&1 ||
      why "openssl s_client to $ip ($name): $(grep -i 'verify\|error' "$LOGS/$CHECK.s_client" | head -n 2 | tr '\n' ' ')" || return 1
    echo "$ip:$DN_MXPORT STARTTLS ok, verified as $name"
  done
}
check dane-infra-https-smtp t_dn_web_curl

check dane-relay-start t_dn_relay

check dane-match dn_if_full t_dn_delivered bob@dane.test "$DN_BOBD1" dane dane
check dane-ta-2-0-1 dn_if_full t_dn_delivered bob@ta.dane.test "$DN_BOBD1" dane dane

# both.dane.test publishes TLSA and an MTA-STS enforce policy whose mx
# pattern does not match its MX: DANE takes precedence (RFC 8461 section 2)
check dane-over-sts dn_if_full t_dn_delivered bob@both.dane.test "$DN_BOBD1" dane dane

check dane-mismatch dn_if_full t_dn_refused "bob@mismatch.dane.test" "$DN_BOBD1" "tlsa|dane|match"

t_dn_stripped() {
  dn_full || return 1
  local to
  to=bob@stripped.dane.test
  t_dn_refused "$to" "$DN_SINKD/msgs" 'starttls|tls|dane' || return 1
  # the refusal must come from the server's missing STARTTLS: R talked to it
  grep -q '^EHLO' "$DN_SINKD/commands.log" 2>/dev/null || why "R never sent EHLO to the server without STARTTLS (refused without trying it)" || return 1
  ! grep -F "$to" "$DN_SINKD/commands.log" || why "R sent RCPT TO the server without STARTTLS (in plain)" || return 1
  ! grep -Eiq '^(MAIL|DATA|BDAT)' "$DN_SINKD/commands.log" || why "R sent MAIL/DATA to the server without STARTTLS" || return 1
  grep -c '^connect' "$DN_SINKD/commands.log" | sed 's/^/connections to the sink: /'
}
check dane-stripped t_dn_stripped

check dane-bogus-mx dn_if_full t_dn_refused "bob@bogus.test" "$DN_BOBD1"
check dane-bogus-tlsa dn_if_full t_dn_refused "bob@tlsa.bogus.test" "$DN_BOBD1"

# plain.test: unsigned, so its (wrong) TLSA record is ignored: may, delivered
check dane-unsigned t_dn_delivered "bob@plain.test" "$DN_BOBD1" 'may' ''

check dane-only-secure dn_if_full t_dn_delivered "bob@only.dane.test" "$DN_BOBD1" "dane-only|dane" "dane"

# dane-only without DNSSEC: never delivered (deferred or bounced both pass)
t_dn_only_unsigned() {
  dn_full || return 1
  local to id e
  to=bob@only.plain.test
  id=$(newid)
  dn_send "$to" "$id" || return 1
  dn_outcome "$to" 30
  echo "attempt: $DN_LINE"
  e=$(dn_qentry "$to")
  echo "queue: $e"
  [[ -n $e ]] && dn_queue delete "$(jq -r .id <<<"$e")"
  if dn_in "$DN_BOBD1" "$id"; then why "delivered without DANE under dane-only: ${DN_LINE:0:300}"; return 1; fi
  [[ $DN_RESULT == deferred || $DN_RESULT == bounced ]] || why "result $DN_RESULT, want deferred or bounced" || return 1
}
check dane-only-unsigned t_dn_only_unsigned

# badsts.test: policy enforce, the MX's certificate names wrong.example
check sts-enforce-badcert dn_if_full t_dn_refused "bob@badsts.test" "$DN_BOBD4" "name|cert|sts|verif"

# teststs.test: the same bad certificate under mode testing: delivered
# (RFC 8461 section 5: testing reports, it does not refuse)
t_dn_sts_testing() {
  dn_full || return 1
  t_dn_delivered bob@teststs.test "$DN_BOBD4" 'mta-sts|sts|may' '' || return 1
  grep -F "host=mta-sts.teststs.test" "$DN_WEB/requests.log" || why "the testing policy was never fetched"
}
check sts-testing-badcert-delivered t_dn_sts_testing

# sts.test: other.sts.test (preference 5, valid certificate) is not in the
# policy: skipped, the message goes to mx.sts.test (D3), not to D1
t_dn_sts_skip() {
  dn_full || return 1
  t_dn_delivered "bob@sts.test" "$DN_BOBD3" 'mta-sts|sts' '' "$DN_BOBD1" || return 1
  [[ $DN_LINE == *"host=mx.sts.test "* || $DN_LINE == *"addr=$DN_D3_IP"* ]] || why "attempt line names another host: $DN_LINE" || return 1
  grep -F "host=mta-sts.sts.test" "$DN_WEB/requests.log" | grep -v 'ua=dane-interop-curl' || why "R never fetched the policy from the web server" || return 1
}
check sts-mx-not-in-policy t_dn_sts_skip

# the policy is cached: web server down, same TXT id, still enforced
t_dn_sts_cache() {
  dn_full || return 1
  local n
  n=$(grep 'host=mta-sts.sts.test' "$DN_WEB/requests.log" 2>/dev/null | grep -vc 'ua=dane-interop-curl')
  stop_pidfile "$DN_WEB"
  port_open "$DN_WEB_IP" 443 && { why "web server still up"; return 1; }
  t_dn_delivered "bob@sts.test" "$DN_BOBD3" 'mta-sts|sts' '' "$DN_BOBD1" || return 1
  echo "R's policy fetches before: $n (web server down since)"
  ((n >= 1)) || why "no earlier policy fetch to cache"
}
check sts-cache t_dn_sts_cache

# dn_bounce_5730 ID: within 15 s a bounce mentioning ID is in alice's
# Maildir at R, with Status: 5.7.30 (REQUIRETLS could not be honoured)
dn_bounce_5730() {
  local f
  f=$(wait_mail_with "$DN_R/data/mail/alice" "$1" 15) ||
    why "no bounce mentioning <$1> in alice's Maildir (result $DN_RESULT: ${DN_LINE:0:200})" || return 1
  grep -E '^(Status|Action|Diagnostic-Code):' "$f"
  grep -q '^Status: 5\.7\.30' "$f" || why "bounce lacks Status: 5.7.30: $(grep -E '^Status:' "$f" | head -n 1)"
}

# REQUIRETLS (RFC 8689): to an insecure, unverifiable destination a bounce
# with 5.7.30; to a DANE-verified one that offers REQUIRETLS, delivered.
t_dn_requiretls_bounce() {
  local to id
  to=bob@plain.test
  id=$(newid)
  dn_send "$to" "$id" --require-tls || return 1
  dn_outcome "$to" 30
  echo "attempt: $DN_LINE"
  if dn_in "$DN_BOBD1" "$id"; then why "REQUIRETLS message delivered to plain.test (MX insecure, certificate not verified): ${DN_LINE:0:300}"; return 1; fi
  dn_bounce_5730 "$id"
}
check requiretls-bounce t_dn_requiretls_bounce

check requiretls-dane-delivered dn_if_full t_dn_delivered "bob@dane.test" "$DN_BOBD1" dane dane "" --require-tls

# noreq.dane.test: DANE-verified STARTTLS, but no REQUIRETLS in its EHLO.
# Without --require-tls: delivered (the control); with it: bounced 5.7.30,
# the message never offered to that server (RFC 8689 section 4.2.1)
t_dn_noreq_control() {
  dn_full || return 1
  t_dn_delivered bob@noreq.dane.test "$DN_NOREQ/msgs" dane dane || return 1
  grep -q '^tls established' "$DN_NOREQ/commands.log" || why "the sink saw no TLS" || return 1
}
check dane-noreq-control-delivered t_dn_noreq_control

t_dn_requiretls_noext() {
  local to=bob@noreq.dane.test id n0
  dn_full || return 1
  n0=$(grep -ci '^tls MAIL FROM' "$DN_NOREQ/commands.log" 2>/dev/null)
  id=$(newid)
  dn_send "$to" "$id" --require-tls || return 1
  dn_outcome "$to" 30
  echo "attempt: $DN_LINE"
  if dn_in "$DN_NOREQ/msgs" "$id"; then why "REQUIRETLS message handed to a server without REQUIRETLS: ${DN_LINE:0:300}"; return 1; fi
  dn_bounce_5730 "$id" || return 1
  tail -n 8 "$DN_NOREQ/commands.log"
  (($(grep -ci '^tls MAIL FROM' "$DN_NOREQ/commands.log") == n0)) || why "R sent MAIL FROM to the server without REQUIRETLS: $(grep -i '^tls MAIL FROM' "$DN_NOREQ/commands.log" | tail -n 1)"
}
check requiretls-no-ext-bounce t_dn_requiretls_noext

# dn_probe DOMAIN MODE: mailsec probe --mx DOMAIN --json, the relay's plan
# and a test session per MX host. MODE config reads R's serve.toml
# (--serve-config: relay resolver, port, ca_file), flags gives
# --resolver/--mx-port/--ca-file. Sets DN_PJ (the JSON file) and DN_PRC
# (exit status).
dn_probe() {
  local dom=$1 mode=$2 args
  args=(probe --mx "$dom" --json)
  DN_PJ=$LOGS/$CHECK.json
  if [[ $mode == config ]]; then
    dn_full || return 1
    args+=(--serve-config "$DN_R/serve.toml")
  else
    args+=(--resolver "127.0.0.1:$DN_UB_PORT" --ca-file "$DN_CA" --mx-port "$DN_MXPORT")
  fi
  printf 'mailsec'; printf ' %q' "${args[@]}"; echo
  timeout 60 "$BIN" "${args[@]}" >"$DN_PJ" 2>"$DN_PJ.stderr"
  DN_PRC=$?
  echo "exit $DN_PRC"
  cat "$DN_PJ"; tail -n 5 "$DN_PJ.stderr"
  jq -e . "$DN_PJ" >/dev/null 2>&1 || why "exit $DN_PRC, stdout is not JSON: $(head -c 200 "$DN_PJ") $(tail -n 1 "$DN_PJ.stderr")"
}

# dn_pj JQ: the JSON satisfies JQ
dn_pj() { jq -e "$1" "$DN_PJ" >/dev/null 2>&1; }

# secure MX, TLSA shown, served certificate matches
t_dn_probe_ok() {
  local d1
  d1=$(cat "$DN_DIR/d1.spki")
  dn_probe dane.test "$1" || return 1
  ((DN_PRC == 0)) || why "exit $DN_PRC" || return 1
  grep -q '"mx\.dane\.test' "$DN_PJ" || why "no mx.dane.test in the output" || return 1
  dn_pj '[.. | objects | to_entries[] | select((.key | test("secure|dnssec"; "i")) and (.value == true or .value == "secure"))] | length > 0' ||
    why "no DNSSEC secure = true anywhere in the JSON" || return 1
  grep -qi "3 1 1 $d1" "$DN_PJ" || why "the TLSA record 3 1 1 $d1 is not in the output" || return 1
  dn_pj '[.. | objects | to_entries[] | select((.key | test("match|dane|verdict|cert"; "i")) and ((.value | type) == "string") and (.value | test("dane.*match"; "i")))] | length > 0' ||
    why "nothing in the JSON says the served certificate matches the TLSA record (dane-matched)" || return 1
  dn_pj '[.checks[]? | select(.ok == false)] | length == 0' || why "a session check failed: $(jq -c '.checks' "$DN_PJ")"
}
check probe-mx t_dn_probe_ok config
check probe-mx-flags t_dn_probe_ok flags

# mismatch: the session must be reported as failing on the TLSA match
t_dn_probe_mismatch() {
  dn_probe mismatch.dane.test config || return 1
  grep -qi "$(cat "$DN_DIR/wrong.spki")" "$DN_PJ" || why "the (wrong) TLSA digest is not shown" || return 1
  dn_pj '[.. | objects | select(.ok == false and ((.error // "") | type == "string" and test("TLSA|DANE|match"; "i")))] | length > 0' ||
    why "no failed session saying the certificate does not match the TLSA records" || return 1
  ! dn_pj '[.. | objects | to_entries[] | select((.value | type) == "string" and (.value | test("^dane-matched$")))] | length > 0' ||
    why "the output says dane-matched" || return 1
  # No host would take the message: the probe fails as a delivery would,
  # with the DANE failure's code (TLSCertificate: exit 77).
  dn_pj '.ok == false and .error.code == "TLSCertificate"' || why "ok is not false with code TLSCertificate" || return 1
  ((DN_PRC == 77)) || why "exit $DN_PRC, want 77" || return 1
}
check probe-mx-mismatch t_dn_probe_mismatch

# bogus: the MX lookup fails validation; an error, no host offered
t_dn_probe_bogus() {
  dn_probe bogus.test config || return 1
  ((DN_PRC != 0)) || why "exit 0 for a domain whose MX answer is bogus" || return 1
  dn_pj '.ok == false' || why "ok is not false" || return 1
  ! dn_pj '[.. | objects | select(.authenticated == true)] | length > 0' || why "a host is shown as authenticated"
}
check probe-mx-bogus t_dn_probe_bogus

# unsigned: no DNSSEC, the (insecure, wrong) TLSA record not used: may
t_dn_probe_unsigned() {
  dn_probe plain.test config || return 1
  ((DN_PRC == 0)) || why "exit $DN_PRC" || return 1
  ! dn_pj '[.. | objects | to_entries[] | select((.key | test("^(secure|dnssec|mx_dnssec)$")) and .value == true)] | length > 0' ||
    why "plain.test shown as DNSSEC-secure" || return 1
  ! grep -qi "$(cat "$DN_DIR/wrong.spki")" "$DN_PJ" || why "the insecure TLSA record is shown as in use" || return 1
  dn_pj '[.. | objects | select(.policy? == "may")] | length > 0' || why "no host under policy may"
}
check probe-mx-unsigned t_dn_probe_unsigned

# summary of R's attempts, for the report
grep -F 'msg="delivery attempt"' "$DN_R/serve.log" 2>/dev/null | sed -n 's/.* to=\([^ ]*\) result=\([a-z]*\) .*/\1 \2/p' |
  sort | uniq -c | sed 's/^/# dane attempts: /' | head -n 30
