# shellcheck shell=bash
# Interop section "cluster": two `mailsec serve` relay nodes sharing one
# PostgreSQL queue ([queue] backend = "postgres"). Sourced by
# scripts/interop.sh (see there for check/why/skip/on_exit/wait_port); run
# alone with INTEROP_SECTIONS=cluster (the smtp checks and the other
# sections are then skipped; the shared peers still start).
#
# Processes, all on 127.0.0.1:
#   PG  a private PostgreSQL cluster: initdb into $W/cluster/pg as the
#       postgres user (runuser), port 16432, host connections scram-sha-256,
#       local socket (in $W/cluster/pgsock) peer for the postgres user only;
#       role mailsec with a random password, database mailsec. PGPASSWORD is
#       put in the environment of the mailsec processes only (env in a
#       subshell), never on a command line or in the DSN.
#   S   the destination: `mailsec serve` with domains = ["sink.test"], user u,
#       MX 16025 (STARTTLS may), embedded queue; messages land in
#       $W/cluster/sink/data/mail/u/new, each with a unique X-Seq header.
#   A   relay node "node-a": submission 16587, metrics 16901, workers 4.
#   B   relay node "node-b": submission 16588, metrics 16902, workers 4.
#       Both: domains = ["cluster.test"], user alice (added in each data
#       dir), backoff 1s..2s, routes sink.test -> 127.0.0.1:16025 (may) and
#       stuck.test -> 127.0.0.1:16099 (nothing listens: mail stays queued).
#
# Checks:
#   cluster-pg-start     the cluster runs, mailsec can log in with the password
#                        (and not without), the DSN in the configs has none
#   cluster-sink-start   S runs
#   cluster-nodes-start  A and B start on the same database (migrations under
#                        the advisory lock), each logs in as mailsec
#   cluster-kill9        1,000 messages submitted to A over 8 STARTTLS+AUTH
#                        sessions (python smtplib, every 250 recorded); A is
#                        killed with SIGKILL while delivering (its DB leases
#                        counted at that moment = in flight); then B alone
#                        drains the queue. Every acknowledged message arrives
#                        at S at least once; duplicates <= the messages A had
#                        leased at the kill (<= workers). Leases A held
#                        pass to B (see below).
#   cluster-db-restart   A (restarted) and B both run while 600 messages are
#                        submitted to both nodes; PostgreSQL is restarted
#                        (pg_ctl restart -m fast) mid-run; submissions that
#                        failed (4xx or a dropped session) are not counted.
#                        Both nodes must accept mail again after the restart,
#                        every acknowledged message must arrive, the queue must
#                        drain (messages whose outcome could not be recorded
#                        during the outage included).
#   cluster-queue-cmds   5 messages to stuck.test submitted to A stay queued;
#                        `mailsec queue list --json --config B.toml` shows
#                        exactly those 5 (their IDs are the ones in the
#                        database), and `queue show` via B works on them
#   cluster-metrics      both nodes' /metrics show mailsec_queue_messages 5
#                        (the database's depth); then the 5 are deleted via B
#                        and both show 0
#
# The nodes' relay.lease_time is 10 s, so the messages a killed node had
# claimed pass to the other node after 10 s.

CL_DIR=$W/cluster
CL_HOST=127.0.0.1
CL_PGPORT=16432
CL_SINK_MX=16025
CL_A_SUB=16587 CL_B_SUB=16588
CL_A_METRICS=16901 CL_B_METRICS=16902
CL_CLOSED=16099
CL_PG=$CL_DIR/pg
CL_PGSOCK=$CL_DIR/pgsock
CL_PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
CL_ALICE_PASS='cl-Al1ce pass'
CL_WORKERS=4

# cl_pgctl ARGS...: pg_ctl on the private cluster, as postgres
cl_pgctl() { runuser -u postgres -- "$CL_PGBIN/pg_ctl" -D "$CL_PG" -l "$CL_DIR/pg.log" -w -t 60 "$@"; }

# cl_psql SQL: run SQL as the superuser over the local socket (peer auth)
cl_psql() { runuser -u postgres -- "$CL_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CL_PGSOCK" -p "$CL_PGPORT" -d "${CL_DB:-mailsec}" -At -c "$1"; }

cl_pg_start() {
  [[ -n $CL_PGBIN && -x $CL_PGBIN/initdb ]] || why "PostgreSQL (initdb) not installed under /usr/lib/postgresql" || return 1
  id postgres >/dev/null 2>&1 || why "no postgres user" || return 1
  [[ -e $CL_PG/postmaster.pid ]] && cl_pgctl stop -m immediate >/dev/null 2>&1
  rm -rf "$CL_DIR"
  mkdir -p "$CL_DIR" "$CL_PGSOCK"
  # postgres must traverse $W (mktemp made it 0700) and own its dirs.
  chmod o+x "$W" "$CL_DIR"
  mkdir -p "$CL_PG"
  chmod 700 "$CL_PG"
  chown postgres: "$CL_PGSOCK" "$CL_PG"
  : >"$CL_DIR/pg.log"
  chown postgres: "$CL_DIR/pg.log"
  runuser -u postgres -- "$CL_PGBIN/initdb" -D "$CL_PG" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    -E UTF8 --locale C --no-sync >"$CL_DIR/initdb.log" 2>&1 || why "initdb: $(tail -n 2 "$CL_DIR/initdb.log")" || return 1
  cat >>"$CL_PG/postgresql.conf" <<EOF
listen_addresses = '$CL_HOST'
port = $CL_PGPORT
unix_socket_directories = '$CL_PGSOCK'
fsync = on
max_connections = 200
password_encryption = 'scram-sha-256'
EOF
  cl_pgctl start >"$CL_DIR/pgctl.log" 2>&1 || why "pg_ctl start: $(tail -n 3 "$CL_DIR/pg.log")" || return 1
  # The password goes to psql on stdin (\password would need a tty): a
  # psql variable, quoted by psql itself.
  CL_PGPASS=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s' "$CL_PGPASS" >"$CL_DIR/pgpass.secret"
  chmod 600 "$CL_DIR/pgpass.secret"
  printf '\\set pw %s\nCREATE ROLE mailsec LOGIN PASSWORD :'"'"'pw'"'"';\nCREATE DATABASE mailsec OWNER mailsec;\n' "$CL_PGPASS" |
    runuser -u postgres -- "$CL_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CL_PGSOCK" -p "$CL_PGPORT" -d postgres >"$CL_DIR/psql.log" 2>&1 ||
    why "cannot create role/database: $(tail -n 2 "$CL_DIR/psql.log")" || return 1
  # scram-sha-256 over TCP: the password works, no password does not.
  # psql reads it from a password file (mailsec processes get PGPASSWORD).
  printf '%s:%s:mailsec:mailsec:%s\n' "$CL_HOST" "$CL_PGPORT" "$CL_PGPASS" >"$CL_DIR/pgpass"
  chmod 600 "$CL_DIR/pgpass"
  env -u PGPASSWORD PGPASSFILE="$CL_DIR/pgpass" "$CL_PGBIN/psql" -X -w -At -h "$CL_HOST" -p "$CL_PGPORT" -U mailsec -d mailsec -c 'select 1' >"$CL_DIR/login.log" 2>&1 ||
    why "mailsec cannot log in over TCP: $(tail -n 1 "$CL_DIR/login.log")" || return 1
  if env -u PGPASSWORD PGPASSFILE=/dev/null "$CL_PGBIN/psql" -X -w -At -h "$CL_HOST" -p "$CL_PGPORT" -U mailsec -d mailsec -c 'select 1' >>"$CL_DIR/login.log" 2>&1; then
    why "login without a password succeeded: host auth is not scram-sha-256"
    return 1
  fi
  [[ $(cl_psql "select auth_method from pg_hba_file_rules where type='host' limit 1") == scram-sha-256 ]] ||
    why "pg_hba host rule is not scram-sha-256" || return 1
}
check cluster-pg-start cl_pg_start
[[ -e $CL_PG/postmaster.pid ]] && on_exit "runuser -u postgres -- '$CL_PGBIN/pg_ctl' -D '$CL_PG' -w -t 30 stop -m fast"
CL_PGPASS=$(cat "$CL_DIR/pgpass.secret" 2>/dev/null)

# cl_node_conf NAME DIR SUB METRICS: the serve.toml of relay node NAME
# (submission port SUB, metrics port METRICS)
cl_node_conf() {
  local name=$1 dir=$2 sub=$3 metrics=$4
  mkdir -p "$dir"
  cat >"$dir/serve.toml" <<EOF
data_dir = "$dir/data"
hostname = "$name.cluster.test"
domains = ["cluster.test"]
metrics = "$CL_HOST:$metrics"

[limits]
auth_failure_delay = "100ms"
max_per_ip = 50
shutdown_timeout = "2s"

[[listener]]
name = "submission"
address = "$CL_HOST:$sub"
kind = "submission"

[relay]
tls = "may"
mta_sts = false
tls_reports = false
resolver = "127.0.0.1:16053"
backoff_min = "1s"
backoff_max = "2s"
connect_timeout = "2s"
command_timeout = "20s"
workers = $CL_WORKERS
# A dead node's claims pass to the other node after this.
lease_time = "10s"

[[relay.route]]
domain = "sink.test"
next_hop = "$CL_HOST:$CL_SINK_MX"
tls = "may"

[[relay.route]]
domain = "stuck.test"
next_hop = "$CL_HOST:$CL_CLOSED"
tls = "may"

[queue]
backend = "postgres"
dsn = "host=$CL_HOST port=$CL_PGPORT user=mailsec dbname=mailsec sslmode=disable"
node = "$name"
EOF
}

# cl_serve NAME DIR: start mailsec serve with DIR/serve.toml (PGPASSWORD in
# its environment only), wait for its banner; pid in DIR/pid
cl_serve() {
  local name=$1 dir=$2 i
  : >"$dir/banner.txt"
  (
    export PGPASSWORD=$CL_PGPASS
    exec "$BIN" serve --config "$dir/serve.toml" >>"$dir/banner.txt" 2>>"$dir/serve.log"
  ) &
  echo $! >"$dir/pid"
  for ((i = 0; i < 150; i++)); do
    grep -q "Try it" "$dir/banner.txt" 2>/dev/null && return 0
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || why "$name exited: $(tail -n 3 "$dir/serve.log")" || return 1
    sleep 0.1
  done
  why "$name did not print its banner in 15 s: $(tail -n 3 "$dir/serve.log")"
}

# cl_stop DIR: SIGTERM the serve of DIR, then SIGKILL after 5 s
cl_stop() { stop_pidfile "$1" TERM 5; }

CL_S=$CL_DIR/sink CL_A=$CL_DIR/a CL_B=$CL_DIR/b
CL_MAILDIR=$CL_S/data/mail/u

cl_sink_start() {
  need_bin || return 1
  mkdir -p "$CL_S"
  cat >"$CL_S/serve.toml" <<EOF
data_dir = "$CL_S/data"
hostname = "sink.test"
domains = ["sink.test"]

[limits]
max_per_ip = 200
max_sessions = 400

[[listener]]
name = "mx"
address = "$CL_HOST:$CL_SINK_MX"
kind = "mx"
tls = "may"

[relay]
enabled = false
EOF
  printf '%s' 'sink-pass' | "$BIN" users add u --data "$CL_S/data" >"$CL_S/users.log" 2>&1 ||
    why "users add u: $(tail -n 1 "$CL_S/users.log")" || return 1
  cl_serve sink "$CL_S" || return 1
  wait_port "$CL_HOST" "$CL_SINK_MX" 50 0.1 || why "sink does not listen on $CL_SINK_MX"
}
on_exit "kill_pidfiles '$CL_S/pid' '$CL_A/pid' '$CL_B/pid'"
check cluster-sink-start cl_sink_start

cl_nodes_start() {
  need_bin || return 1
  [[ -n $CL_PGPASS ]] || why "no cluster (see cluster-pg-start)" || return 1
  local n
  cl_node_conf node-a "$CL_A" "$CL_A_SUB" "$CL_A_METRICS"
  cl_node_conf node-b "$CL_B" "$CL_B_SUB" "$CL_B_METRICS"
  for n in "$CL_A" "$CL_B"; do
    grep -qi password "$n/serve.toml" && { why "password in $n/serve.toml"; return 1; }
    printf '%s' "$CL_ALICE_PASS" | "$BIN" users add alice --data "$n/data" >"$n/users.log" 2>&1 ||
      why "users add alice in $n: $(tail -n 1 "$n/users.log")" || return 1
  done
  # Both at once: the migrations must run once, under the advisory lock.
  cl_serve node-a "$CL_A" &
  local pa=$!
  cl_serve node-b "$CL_B" || return 1
  wait $pa || why "node-a did not start" || return 1
  local apps
  apps=$(cl_psql "select string_agg(distinct application_name, ',' order by application_name) from pg_stat_activity where usename='mailsec'")
  [[ $apps == *"mailsec node-a"* && $apps == *"mailsec node-b"* ]] || why "pg_stat_activity shows '$apps', want both nodes" || return 1
  [[ $(cl_psql "select count(*) from messages") == 0 ]] || why "messages table missing or not empty"
}
check cluster-nodes-start cl_nodes_start

# The submitter: python3 smtplib, N messages spread over C sessions, each
# STARTTLS (verifying the node's generated CA) and AUTH as alice; every
# message has a unique X-Seq: PREFIX-i and is recorded in ACKED when the
# server answered 250. A failed message (4xx/5xx or a broken session) is
# recorded in FAILED and not retried; the session reconnects (for the
# database restart). Targets are PORT:CAFILE, taken in turn per session.
cat >"$CL_DIR/submit.py" 2>/dev/null <<'EOF'
import os, smtplib, ssl, sys, threading, time
n, conns, prefix, acked_path, failed_path, rcpt, pace = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], float(sys.argv[7])
targets = [t.split(":", 1) for t in sys.argv[8:]]
pw = os.environ["CL_PW"]
lock = threading.Lock()
acked = open(acked_path, "a")
failed = open(failed_path, "a")
deadline = time.time() + float(os.environ.get("CL_DEADLINE", "120"))
def msg(seq):
    return ("From: alice@cluster.test\r\nTo: %s\r\nSubject: cluster %s\r\nX-Seq: %s\r\n"
            "Message-ID: <%s@cluster.test>\r\n\r\nbody of %s\r\n" % (rcpt, seq, seq, seq, seq)) + ("x" * 70 + "\r\n") * 10
def session(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
    s.ehlo("client.cluster.test"); s.starttls(context=ctx); s.ehlo("client.cluster.test")
    s.login("alice", pw)
    return s
def worker(w):
    port, ca = targets[w % len(targets)]
    s = None
    for i in range(w, n, conns):
        if time.time() > deadline:
            with lock: failed.write("%s-%d deadline\n" % (prefix, i)); failed.flush()
            continue
        seq = "%s-%d" % (prefix, i)
        try:
            if s is None:
                s = session(port, ca)
            s.sendmail("alice@cluster.test", [rcpt], msg(seq).encode())
            with lock: acked.write(seq + "\n"); acked.flush()
        except Exception as e:
            with lock: failed.write("%s %s %r\n" % (seq, port, e)); failed.flush()
            try:
                s.close()
            except Exception:
                pass
            s = None
            time.sleep(0.2)
        if pace:
            time.sleep(pace)
    if s is not None:
        try: s.quit()
        except Exception: pass
ts = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
[t.start() for t in ts]
[t.join() for t in ts]
EOF

# cl_seqs PREFIX: "count seq" of every X-Seq PREFIX-* that arrived at S
cl_seqs() { grep -rhs "^X-Seq: $1-" "$CL_MAILDIR/new" "$CL_MAILDIR/cur" | tr -d '\r' | awk '{print $2}' | sort | uniq -c; }
cl_arrived() { grep -rlsF "X-Seq: $1-" "$CL_MAILDIR/new" "$CL_MAILDIR/cur" | wc -l; }
cl_depth() { cl_psql "select count(*) from messages"; }

# cl_submit_fg PREFIX N CONNS RCPT PACE TARGET...: run the submitter (at
# most 150 s); acknowledged X-Seqs in $CL_DIR/PREFIX.acked, failures in
# $CL_DIR/PREFIX.failed
cl_submit_fg() {
  local p=$1 n=$2 c=$3 rcpt=$4 pace=$5
  shift 5
  : >"$CL_DIR/$p.acked"
  : >"$CL_DIR/$p.failed"
  CL_PW=$CL_ALICE_PASS timeout 150 python3 "$CL_DIR/submit.py" "$n" "$c" "$p" "$CL_DIR/$p.acked" "$CL_DIR/$p.failed" \
    "$rcpt" "$pace" "$@" >"$CL_DIR/$p.py.log" 2>&1
}

# cl_submit PREFIX N CONNS PACE TARGET...: cl_submit_fg to u@sink.test in
# the background; pid in $CL_DIR/PREFIX.pid
cl_submit() {
  local p=$1 n=$2 c=$3 pace=$4
  shift 4
  cl_submit_fg "$p" "$n" "$c" u@sink.test "$pace" "$@" &
  echo $! >"$CL_DIR/$p.pid"
}

# cl_verify PREFIX MAXDUP: every acked message arrived, duplicates <= MAXDUP
cl_verify() {
  local p=$1 maxdup=$2 acked missing dups
  cl_seqs "$p" >"$CL_DIR/$p.arrived"
  acked=$(sort -u "$CL_DIR/$p.acked" | wc -l)
  missing=$(awk '{print $2}' "$CL_DIR/$p.arrived" | sort | comm -23 <(sort -u "$CL_DIR/$p.acked") - | wc -l)
  dups=$(awk '$1 > 1 {d += $1 - 1} END {print d + 0}' "$CL_DIR/$p.arrived")
  echo "acked=$acked failed=$(wc -l <"$CL_DIR/$p.failed") arrived_files=$(awk '{s += $1} END {print s + 0}' "$CL_DIR/$p.arrived") distinct=$(wc -l <"$CL_DIR/$p.arrived") missing=$missing duplicates=$dups"
  ((missing == 0)) || why "$missing acknowledged messages never arrived (first: $(awk '{print $2}' "$CL_DIR/$p.arrived" | sort | comm -23 <(sort -u "$CL_DIR/$p.acked") - | head -n 3 | tr '\n' ' '))" || return 1
  ((dups <= maxdup)) || why "$dups duplicates, at most $maxdup allowed: $(awk '$1 > 1' "$CL_DIR/$p.arrived" | head -n 5 | tr '\n' ' ')" || return 1
}

# cl_wait_drain SECONDS PREFIX: wait until the DB queue is empty; entries
# left leased for minutes (which a 10 s lease_time should never give) are
# listed in $CL_DIR/PREFIX.stuck once they are all that is left
cl_wait_drain() {
  local secs=$1 p=$2 i depth stuck last="" same=0
  for ((i = 0; i < secs * 2; i++)); do
    depth=$(cl_depth 2>/dev/null) || depth="?"
    if [[ $depth == 0 ]]; then
      return 0
    fi
    # Entries leased to a node that is dead (kill -9) or that failed to
    # record its outcome: leases that will not end within the test.
    stuck=$(cl_psql "select count(*) from messages where lease_expires > now() + interval '60 seconds'" 2>/dev/null)
    if [[ $depth == "$stuck" && $depth != "$last" ]]; then same=0; fi
    [[ $depth == "$stuck" ]] && same=$((same + 1))
    last=$depth
    if ((same >= 6)); then
      # Nothing but long-leased entries for 3 s: the rest is done.
      cl_psql "select id, lease_node, lease_expires - now() from messages" >>"$CL_DIR/$p.stuck"
      echo "after $((i / 2)) s: $depth entries still leased for minutes (see $CL_DIR/$p.stuck): $(cut -d'|' -f2 "$CL_DIR/$p.stuck" | sort | uniq -c | tr '\n' ' ')"
      same=-1000 # listed once
    fi
    sleep 0.5
  done
  why "queue not empty after ${secs}s: depth $depth ($(cl_psql "select coalesce(lease_node,'-') || ':' || attempts from messages" 2>/dev/null | sort | uniq -c | head -n 5 | tr '\n' ' '))"
}

t_cl_kill9() {
  [[ -s $CL_A/pid && -s $CL_B/pid ]] || why "nodes not running (see cluster-nodes-start)" || return 1
  # B stays out of it until A is dead: A alone takes and delivers.
  cl_stop "$CL_B"
  cl_submit k9 1000 8 0 "$CL_A_SUB:$CL_A/data/tls/ca.pem"
  local i arrived depth acked inflight
  # Kill A once it has delivered a few hundred and still has a backlog.
  for ((i = 0; i < 600; i++)); do
    arrived=$(cl_arrived k9)
    acked=$(wc -l <"$CL_DIR/k9.acked")
    depth=$(cl_depth)
    ((arrived >= 250 && depth >= 20)) && break
    kill -0 "$(cat "$CL_DIR/k9.pid")" 2>/dev/null || { ((depth >= 20)) && break; }
    sleep 0.1
  done
  kill -KILL "$(cat "$CL_A/pid")"
  # Dead now: what it had claimed (leased, not yet recorded) was in flight.
  sleep 0.2
  inflight=$(cl_psql "select count(*) from messages where lease_node = 'node-a' and lease_expires > now()")
  echo "kill -9 node-a after $((i / 10)) s: arrived=$arrived acked=$acked queue=$depth leased_by_a(in flight)=$inflight"
  ((inflight >= 1)) || why "no message was in flight at the kill (arrived $arrived, queue $depth): the kill came too late or too early" || return 1
  ((inflight <= CL_WORKERS)) || why "node-a held $inflight leases, more than its $CL_WORKERS workers" || return 1
  wait "$(cat "$CL_DIR/k9.pid")" 2>/dev/null
  # The submitter ends (the rest of its messages fail: A is gone).
  for ((i = 0; i < 300; i++)); do kill -0 "$(cat "$CL_DIR/k9.pid")" 2>/dev/null || break; sleep 0.1; done
  echo "submitter: acked=$(wc -l <"$CL_DIR/k9.acked") failed=$(wc -l <"$CL_DIR/k9.failed") queue=$(cl_depth)"
  cl_serve node-b "$CL_B" || return 1
  cl_wait_drain 90 k9 || return 1
  # The last deliveries may still be in the sink's hands: wait briefly.
  for ((i = 0; i < 20; i++)); do
    cl_verify k9 "$inflight" >/dev/null 2>&1 && break
    sleep 0.25
  done
  : >"$LOGS/$CHECK.reason"
  cl_verify k9 "$inflight"
}
check cluster-kill9 t_cl_kill9

t_cl_db_restart() {
  [[ -s $CL_B/pid ]] || why "node-b not running" || return 1
  kill -0 "$(cat "$CL_A/pid")" 2>/dev/null && cl_stop "$CL_A"
  cl_serve node-a "$CL_A" || return 1
  [[ $(cl_depth) == 0 ]] || why "queue not empty before the case" || return 1
  local t0 i acked_before acked_after
  # 600 messages over 6 sessions (3 per node), paced to last ~10 s.
  CL_DEADLINE=60 cl_submit dbr 600 6 0.08 "$CL_A_SUB:$CL_A/data/tls/ca.pem" "$CL_B_SUB:$CL_B/data/tls/ca.pem"
  for ((i = 0; i < 100; i++)); do
    (($(wc -l <"$CL_DIR/dbr.acked") >= 150)) && break
    sleep 0.1
  done
  acked_before=$(wc -l <"$CL_DIR/dbr.acked")
  t0=$(date +%s.%N)
  cl_pgctl restart -m fast >"$CL_DIR/pgrestart.log" 2>&1 || why "pg_ctl restart failed: $(tail -n 2 "$CL_DIR/pgrestart.log")" || return 1
  echo "PostgreSQL restarted in $(echo "$(date +%s.%N) - $t0" | bc) s after $acked_before acknowledged submissions"
  for ((i = 0; i < 300; i++)); do kill -0 "$(cat "$CL_DIR/dbr.pid")" 2>/dev/null || break; sleep 0.1; done
  acked_after=$(wc -l <"$CL_DIR/dbr.acked")
  echo "submitter: acked=$acked_after failed=$(wc -l <"$CL_DIR/dbr.failed")"
  cut -d' ' -f2- "$CL_DIR/dbr.failed" | sed 's/[0-9]\{4,\}//g' | sort | uniq -c | head -n 5
  ((acked_after > acked_before + 100)) || why "only $((acked_after - acked_before)) messages acknowledged after the restart: the nodes did not recover" || return 1
  # Each node must have acknowledged mail after the restart: a message per
  # node, sent now.
  cl_submit_fg dbr2 2 2 u@sink.test 0 "$CL_A_SUB:$CL_A/data/tls/ca.pem" "$CL_B_SUB:$CL_B/data/tls/ca.pem"
  (($(wc -l <"$CL_DIR/dbr2.acked") == 2)) || why "after the restart a node refuses mail: $(cat "$CL_DIR/dbr2.failed")" || return 1
  cl_wait_drain 60 dbr || return 1
  for ((i = 0; i < 20; i++)); do
    cl_verify dbr 0 >/dev/null 2>&1 && cl_verify dbr2 0 >/dev/null 2>&1 && break
    sleep 0.25
  done
  : >"$LOGS/$CHECK.reason"
  grep -h "recording the outcome failed\|claiming due messages failed" "$CL_A/serve.log" "$CL_B/serve.log" | wc -l | sed 's/^/relay errors logged during the outage: /'
  cl_verify dbr2 0 || return 1
  # Duplicates: only deliveries whose outcome could not be recorded while
  # the database was down; at most the workers of both nodes.
  cl_verify dbr $((2 * CL_WORKERS))
}
check cluster-db-restart t_cl_db_restart

t_cl_queue_cmds() {
  [[ -s $CL_B/pid ]] || why "node-b not running" || return 1
  cl_submit_fg qc 5 1 x@stuck.test 0 "$CL_A_SUB:$CL_A/data/tls/ca.pem"
  (($(wc -l <"$CL_DIR/qc.acked") == 5)) || why "A acknowledged $(wc -l <"$CL_DIR/qc.acked") of 5: $(head -n 2 "$CL_DIR/qc.failed")" || return 1
  "$BIN" queue list --json --config "$CL_B/serve.toml" >"$CL_DIR/qc.list.json" 2>"$CL_DIR/qc.list.err" ||
    why "queue list --json via B failed: $(tail -n 1 "$CL_DIR/qc.list.err")" || return 1
  local got want id
  got=$(jq -r '.messages[] | select(any(.recipients[]; . == "x@stuck.test")) | .id' "$CL_DIR/qc.list.json" | sort)
  want=$(cl_psql "select id from messages order by id")
  [[ $(jq '.messages | length' "$CL_DIR/qc.list.json") == 5 ]] || why "queue list via B shows $(jq '.messages | length' "$CL_DIR/qc.list.json") messages, want 5: $(head -c 300 "$CL_DIR/qc.list.json")" || return 1
  [[ $got == "$want" ]] || why "IDs listed via B differ from the database's: $got vs $want" || return 1
  jq -r '.messages[0] | "first: \(.id) from=\(.from) attempts=\(.attempts) last_error=\(.last_error.code // "-")"' "$CL_DIR/qc.list.json"
  id=$(head -n 1 <<<"$want")
  "$BIN" queue show "$id" --json --config "$CL_B/serve.toml" >"$CL_DIR/qc.show.json" 2>"$CL_DIR/qc.show.err" ||
    why "queue show $id via B: $(tail -n 1 "$CL_DIR/qc.show.err")" || return 1
  jq -e --arg id "$id" '.message.id == $id or .message.ID == $id' "$CL_DIR/qc.show.json" >/dev/null ||
    why "queue show via B does not show $id: $(head -c 200 "$CL_DIR/qc.show.json")"
}
check cluster-queue-cmds t_cl_queue_cmds

# cl_metric PORT: the value of mailsec_queue_messages
cl_metric() { curl -sS "http://$CL_HOST:$1/metrics" | awk '$1 == "mailsec_queue_messages" {print $2}'; }

t_cl_metrics() {
  local a b i depth
  depth=$(cl_depth)
  a=$(cl_metric "$CL_A_METRICS") b=$(cl_metric "$CL_B_METRICS")
  echo "database: $depth, node-a: $a, node-b: $b"
  [[ -n $a && -n $b ]] || why "mailsec_queue_messages missing (node-a '$a', node-b '$b')" || return 1
  [[ $a == "$b" && $a == "$depth" ]] || why "node-a shows $a, node-b $b, the database has $depth" || return 1
  ((depth == 5)) || why "depth $depth, want the 5 stuck messages" || return 1
  for i in $(cl_psql "select id from messages"); do
    "$BIN" queue delete "$i" --config "$CL_B/serve.toml" >>"$CL_DIR/qc.delete.log" 2>&1 || why "queue delete $i via B failed" || return 1
  done
  a=$(cl_metric "$CL_A_METRICS") b=$(cl_metric "$CL_B_METRICS")
  echo "after queue delete via B: database: $(cl_depth), node-a: $a, node-b: $b"
  [[ $a == 0 && $b == 0 ]] || why "after deleting via B: node-a shows $a, node-b $b, want 0"
}
check cluster-metrics t_cl_metrics

# Stop the nodes and the sink now (on_exit kills too, in case).
cl_stop "$CL_A"
cl_stop "$CL_B"
cl_stop "$CL_S"
