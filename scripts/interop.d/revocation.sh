# Interop section "revocation": mailsec's certificate revocation checks
# against a PKI made with openssl and a private Postfix serving its leaves.
# Sourced by scripts/interop.sh (see there for check/why/skip/ms/mkmsg).
#
# Under $W/revocation: a root, an intermediate, an OCSP signer certified by
# the intermediate, and two leaves for localhost (one good, one revoked for
# keyCompromise). The leaves name the OCSP responder and the intermediate's
# CRL; the intermediate names the root's CRL. A tiny HTTP server (perl, on
# 127.0.0.1:14001) serves the CRLs and answers OCSP POSTs by running the
# openssl responder (`openssl ocsp -index`) on each request. A private
# Postfix (own config_directory and queue_directory; the shared instance is
# never touched) offers STARTTLS with the good leaf on 14025 and with the
# revoked one on 14026, and discards what it accepts.

RV_DIR=$W/revocation
RV_HOST=127.0.0.1
RV_HTTP=14001 RV_GOOD=14025 RV_REVOKED=14026
RV_URL=http://$RV_HOST:$RV_HTTP
RV_PF=$RV_DIR/postfix

# rv_ca NAME: an openssl ca config for the CA in $RV_DIR/NAME
rv_ca() {
  local d=$RV_DIR/$1
  mkdir -p "$d/new"
  : >"$d/index.txt"
  echo 1000 >"$d/serial"
  echo 1000 >"$d/crlnumber"
  cat >"$d/ca.cnf" <<EOF
[ca]
default_ca = this
[this]
database = $d/index.txt
serial = $d/serial
crlnumber = $d/crlnumber
new_certs_dir = $d/new
certificate = $d/cert.pem
private_key = $d/key.pem
default_md = sha256
default_days = 2
default_crl_days = 1
policy = anything
unique_subject = no
[anything]
commonName = supplied
EOF
}

# rv_issue CA NAME SUBJECT EXTENSIONS: a P-256 key and a certificate signed by CA
rv_issue() {
  local ca=$1 name=$2 subj=$3 ext=$4
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subj" \
    -keyout "$RV_DIR/$name.key" -out "$RV_DIR/$name.csr" 2>>"$RV_DIR/openssl.log" &&
    openssl ca -batch -notext -config "$RV_DIR/$ca/ca.cnf" -extfile "$RV_DIR/ext.cnf" -extensions "$ext" \
      -in "$RV_DIR/$name.csr" -out "$RV_DIR/$name.pem" >>"$RV_DIR/openssl.log" 2>&1
}

rv_crl() {
  openssl ca -gencrl -config "$RV_DIR/$1/ca.cnf" -out "$RV_DIR/$1.crl.pem" >>"$RV_DIR/openssl.log" 2>&1 &&
    openssl crl -in "$RV_DIR/$1.crl.pem" -outform DER -out "$RV_DIR/http/$1.crl"
}

t_rv_pki() {
  rm -rf "$RV_DIR"
  mkdir -p "$RV_DIR/http"
  cat >"$RV_DIR/ext.cnf" <<EOF
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
crlDistributionPoints = URI:$RV_URL/root.crl
[ocsp]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,OCSPSigning
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityInfoAccess = OCSP;URI:$RV_URL/ocsp
crlDistributionPoints = URI:$RV_URL/inter.crl
EOF
  rv_ca root
  rv_ca inter
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=mailsec revocation test root" -keyout "$RV_DIR/root/key.pem" -out "$RV_DIR/root/cert.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>>"$RV_DIR/openssl.log" || why "cannot make the root: $(tail -n 2 "$RV_DIR/openssl.log")" || return 1
  cp "$RV_DIR/root/cert.pem" "$RV_DIR/root.pem"
  rv_issue root inter-tmp "/CN=mailsec revocation test intermediate" inter || why "cannot make the intermediate" || return 1
  mv "$RV_DIR/inter-tmp.pem" "$RV_DIR/inter/cert.pem"
  mv "$RV_DIR/inter-tmp.key" "$RV_DIR/inter/key.pem"
  rv_issue inter ocsp "/CN=mailsec revocation test OCSP signer" ocsp || why "cannot make the OCSP signer" || return 1
  rv_issue inter good "/CN=localhost" leaf || why "cannot make the good leaf" || return 1
  rv_issue inter revoked "/CN=localhost" leaf || why "cannot make the revoked leaf" || return 1
  openssl ca -config "$RV_DIR/inter/ca.cnf" -revoke "$RV_DIR/revoked.pem" -crl_reason keyCompromise \
    >>"$RV_DIR/openssl.log" 2>&1 || why "cannot revoke: $(tail -n 2 "$RV_DIR/openssl.log")" || return 1
  rv_crl root && rv_crl inter || why "cannot make the CRLs: $(tail -n 2 "$RV_DIR/openssl.log")" || return 1
  cat "$RV_DIR/good.pem" "$RV_DIR/inter/cert.pem" >"$RV_DIR/good-chain.pem"
  cat "$RV_DIR/revoked.pem" "$RV_DIR/inter/cert.pem" >"$RV_DIR/revoked-chain.pem"
  # Postfix's master takes its lock in data_directory as the mail owner, so
  # the way there must be searchable (not readable) by others.
  chmod o+x "$W" "$RV_DIR"
}
check rv-pki t_rv_pki

# The HTTP server: GET /NAME serves $RV_DIR/http/NAME, POST /ocsp answers
# with the openssl responder over the intermediate's index.
t_rv_http() {
  cat >"$RV_DIR/http.pl" <<'EOF'
use strict;
use IO::Socket::INET;
my ($host, $port, $dir, $rv) = @ARGV;
my $l = IO::Socket::INET->new(LocalAddr => $host, LocalPort => $port, Listen => 8, ReuseAddr => 1)
  or die "listen $host:$port: $!";
$SIG{PIPE} = 'IGNORE';
while (my $c = $l->accept) {
  eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 10;
    binmode $c;
    my $req = <$c> // die "no request\n";
    my $len = 0;
    while (my $h = <$c>) {
      last if $h =~ /^\r?\n$/;
      $len = $1 if $h =~ /^Content-Length:\s*(\d+)/i;
    }
    my ($status, $type, $body) = ("404 Not Found", "text/plain", "");
    if ($req =~ m{^GET /([\w.-]+) HTTP} && -f "$dir/$1" && open(my $f, '<:raw', "$dir/$1")) {
      local $/;
      ($status, $type, $body) = ("200 OK", "application/pkix-crl", <$f>);
    } elsif ($req =~ m{^POST /ocsp HTTP} && $len > 0 && $len < 65536) {
      read($c, my $in, $len) == $len or die "short body\n";
      open(my $q, '>:raw', "$rv/ocsp-req.der") or die;
      print $q $in;
      close $q;
      system("openssl ocsp -index $rv/inter/index.txt -CA $rv/inter/cert.pem -rsigner $rv/ocsp.pem -rkey $rv/ocsp.key"
        . " -nmin 10 -reqin $rv/ocsp-req.der -respout $rv/ocsp-resp.der >>$rv/ocsp.log 2>&1") == 0 or die "openssl ocsp failed\n";
      open(my $r, '<:raw', "$rv/ocsp-resp.der") or die;
      local $/;
      ($status, $type, $body) = ("200 OK", "application/ocsp-response", <$r>);
    }
    print $c "HTTP/1.0 $status\r\nContent-Type: $type\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
    alarm 0;
  };
  print STDERR $@ if $@;
  close $c;
}
EOF
  perl "$RV_DIR/http.pl" "$RV_HOST" "$RV_HTTP" "$RV_DIR/http" "$RV_DIR" 2>"$RV_DIR/http.log" &
  echo $! >"$RV_DIR/http.pid"
  local i
  for ((i = 0; i < 50; i++)); do
    curl -fsS -o "$RV_DIR/fetched.crl" "$RV_URL/inter.crl" 2>/dev/null && break
    sleep 0.1
  done
  cmp -s "$RV_DIR/fetched.crl" "$RV_DIR/http/inter.crl" || why "the CRL server does not serve inter.crl: $(tail -n 2 "$RV_DIR/http.log")" || return 1
  # openssl's own client agrees with the responder before mailsec asks it.
  openssl ocsp -issuer "$RV_DIR/inter/cert.pem" -cert "$RV_DIR/revoked.pem" -url "$RV_URL/ocsp" \
    -CAfile "$RV_DIR/root.pem" -verify_other "$RV_DIR/inter/cert.pem" >"$RV_DIR/ocsp-check.txt" 2>&1 || true
  grep -q "revoked.pem: revoked" "$RV_DIR/ocsp-check.txt" || why "openssl ocsp does not see the leaf revoked: $(tr '\n' ' ' <"$RV_DIR/ocsp-check.txt")"
}
check rv-http t_rv_http
[[ -s $RV_DIR/http.pid ]] && on_exit "kill $(cat "$RV_DIR/http.pid")"

t_rv_postfix() {
  private_postfix "$RV_PF" revocation \
    "$RV_HOST:$RV_GOOD -o smtpd_tls_chain_files=$RV_DIR/good.key,$RV_DIR/good-chain.pem" \
    "$RV_HOST:$RV_REVOKED -o smtpd_tls_chain_files=$RV_DIR/revoked.key,$RV_DIR/revoked-chain.pem" <<EOF
myhostname = revocation.mailsec.test
inet_interfaces = $RV_HOST
# Everything accepted is thrown away: the checks are about the handshake.
default_transport = discard:revocation test
relay_transport = discard:revocation test
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
EOF
}
check rv-postfix t_rv_postfix
[[ -e $RV_PF/spool/pid/master.pid ]] && on_exit "postfix -c '$RV_PF/etc' stop"

RV_TLS=(--tls starttls --ca-file "$RV_DIR/root.pem" --tls-server-name localhost --json)

# rv_send PORT ARGS...: mailsec send a fresh message to PORT
rv_send() {
  local port=$1 msg=$MSGS/$CHECK.eml
  shift
  mkmsg "$msg" "$(newid)" plain
  MS_NOPASS=1 ms "$msg" --server "$RV_HOST:$port" "${RV_TLS[@]}" --from "sender@$MAIL_DOMAIN" --to "$ALICE_ADDR" "$@"
}

# rv_refused: the last command exited 77 with TLSCertificate saying what $1 says
rv_refused() {
  ((MS_RC == 77)) || why "exit $MS_RC, want 77 ($(ms_summary))" || return 1
  [[ $(json_code) == TLSCertificate ]] || why "error code $(json_code), want TLSCertificate" || return 1
  jq -r '.error.message // empty' "$MS_OUT" | grep -q "$1" ||
    why "the error does not say '$1': $(jq -c .error "$MS_OUT")"
}

t_rv_send_good() {
  rv_send "$RV_GOOD" || return 1
  ((MS_RC == 0)) || why "exit $MS_RC ($(ms_summary))" || return 1
  [[ $(jq -r '.tls.revocation[0].status' "$MS_OUT") == good ]] ||
    why "leaf revocation status: $(jq -c '.tls.revocation' "$MS_OUT")"
}
check rv-send-good t_rv_send_good

t_rv_send_revoked() {
  rv_send "$RV_REVOKED" || return 1
  rv_refused "is revoked according to the OCSP responder $RV_URL/ocsp" || return 1
  jq -r '.error.message' "$MS_OUT" | grep -q "keyCompromise (1)" || why "the error does not give the reason"
}
check rv-send-revoked t_rv_send_revoked

# rv_probe PORT: mailsec probe the listener on PORT; sets RV_OUT (its
# stdout) and RV_RC
rv_probe() {
  RV_OUT=$LOGS/$CHECK.stdout
  timeout 60 "$BIN" probe --server "$RV_HOST:$1" --ca-file "$RV_DIR/root.pem" --tls-server-name localhost \
    >"$RV_OUT" 2>"$LOGS/$CHECK.stderr"
  RV_RC=$?
}

t_rv_probe_revoked() {
  rv_probe "$RV_REVOKED"
  ((RV_RC == 77)) || why "probe exit $RV_RC, want 77" || return 1
  grep -Eq "revocation 0 +CN=localhost: revoked per OCSP responder $RV_URL/ocsp" "$RV_OUT" ||
    why "probe does not show the leaf revoked: $(grep revocation "$RV_OUT" | tr '\n' ' ')" || return 1
  grep -Eq "revocation 1 .*intermediate: good per CRL $RV_URL/root.crl" "$RV_OUT" ||
    why "probe does not show the intermediate good from the root's CRL: $(grep revocation "$RV_OUT" | tr '\n' ' ')"
}
check rv-probe-revoked t_rv_probe_revoked

t_rv_probe_good() {
  rv_probe "$RV_GOOD"
  ((RV_RC == 0)) || why "probe exit $RV_RC: $(tail -n 1 "$LOGS/$CHECK.stderr")" || return 1
  grep -Eq "revocation 0 +CN=localhost: good per OCSP responder $RV_URL/ocsp" "$RV_OUT" ||
    why "probe does not show the leaf good: $(grep revocation "$RV_OUT" | tr '\n' ' ')"
}
check rv-probe-good t_rv_probe_good

t_rv_off() {
  rv_send "$RV_REVOKED" --revocation off || return 1
  ((MS_RC == 0)) || why "--revocation off: exit $MS_RC ($(ms_summary))"
}
check rv-revocation-off-accepts-revoked t_rv_off

t_rv_strict_good() {
  rv_send "$RV_GOOD" --revocation-strict || return 1
  ((MS_RC == 0)) || why "--revocation-strict: exit $MS_RC ($(ms_summary))"
}
check rv-strict-accepts-good t_rv_strict_good

t_rv_leaf() {
  rv_send "$RV_REVOKED" --revocation leaf || return 1
  rv_refused "is revoked"
}
check rv-leaf-refuses-revoked t_rv_leaf

# With the OCSP responder gone, the CRL still tells.
t_rv_crl() {
  mv "$RV_DIR/inter/index.txt" "$RV_DIR/inter/index.txt.off"
  rv_send "$RV_REVOKED"
  mv "$RV_DIR/inter/index.txt.off" "$RV_DIR/inter/index.txt"
  rv_refused "is revoked according to the CRL at $RV_URL/inter.crl"
}
check rv-crl-when-responder-fails t_rv_crl
