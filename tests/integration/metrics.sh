#!/usr/bin/env bash
# Metrics and chargeback (docs/metrics.md) against the real controller and a linked exporter: /metrics passes
# promtool, a real Prometheus scrapes both and answers lease-seconds by team as leased here, the usage report
# matches the leases' history, the team comes from the client's label or the request, the counters survive a
# controller restart, bad --from/--to are refused, and the monitoring kit passes promtool.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-controller.sh"

command -v promtool >/dev/null && command -v prometheus >/dev/null ||
        fail "promtool and prometheus are missing (tools/install-deps.sh installs them)"
unset JMP_CLIENT_CONFIG XDG_CONFIG_HOME
export HOME=$T/home
mkdir -p "$HOME"

free_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_long COMMAND...: as wait_for, up to 60 s (Prometheus shows its first samples some seconds after start).
wait_long() {
        local i
        for i in $(seq 1 600); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        return 1
}

# --- the monitoring kit ----------------------------------------------------------------------------
KIT=$SOURCE_ROOT/examples/monitoring
promtool check config "$KIT/prometheus.yml" > "$T/check.log" 2>&1 || fail "promtool check config: $(cat "$T/check.log")"
promtool check rules "$KIT/jumpstarter-alerts.yml" > "$T/check.log" 2>&1 || fail "promtool check rules: $(cat "$T/check.log")"
# The dashboard is JSON, and every metric it (or an alert) names is documented.
$PY - "$KIT" "$SOURCE_ROOT/docs/metrics.md" <<'PY' || fail "the monitoring kit names undocumented metrics"
import json, re, sys
kit, doc = sys.argv[1], open(sys.argv[2]).read()
text = json.dumps(json.load(open(kit + "/grafana-dashboard.json"))) + open(kit + "/jumpstarter-alerts.yml").read()
names = set(re.findall(r"jumpstarter_[a-z0-9_]+", text))
names = {re.sub(r"_(bucket|sum|count)$", "", n) if n.startswith(("jumpstarter_lease_wait", "jumpstarter_lease_duration")) else n for n in names}
missing = sorted(n for n in names if "`" + n + "`" not in doc)
if missing:
    print("undocumented:", missing); sys.exit(1)
PY

# --- controller, clients with teams, a linked exporter with metrics ---------------------------------
write_controller_config 'history:
  retention: 400d'
start_controller
ADMIN=$STATE/admin-client.yaml
as() { local cfg=$1; shift; "$JMP" --client-config "$cfg" "$@"; }
as "$ADMIN" admin create client alice --label team=platform -o "$T/alice.yaml" >/dev/null || fail "create alice"
as "$ADMIN" admin create client bob --label team=qa -o "$T/bob.yaml" >/dev/null || fail "create bob"
as "$ADMIN" admin create exporter lab1 -o "$T/exporter.yaml" >/dev/null || fail "create lab1"
MPORT=$(free_port)
cat >> "$T/exporter.yaml" <<YAML
metrics:
  listen: "127.0.0.1:$MPORT"
export:
  dut1:
    type: sim
    labels: {model: widget}
    config: {size: 1MiB, boot_time: 100ms}
YAML
sed -i '/^export: {}$/d' "$T/exporter.yaml"
start_local "$T/exporter.yaml" >/dev/null
LOG=$(echo "$JMP_RUNTIME_DIR"/local/*/jumpstarterd.log)
ADMIN_TOKEN=$(admin_token)
online() { [ "$(api "$ADMIN_TOKEN" GET /exporters/lab1 | json 'd["state"]')" = online ]; }
wait_for online || fail "lab1 did not come online: $(tail "$LOG")"

# --- /metrics passes promtool ------------------------------------------------------------------------
curl -sf --cacert "$CERT" "$URL/metrics" > "$T/ctl.prom" || fail "GET /metrics on the controller"
promtool check metrics < "$T/ctl.prom" > "$T/lint" 2>&1 || fail "promtool on the controller: $(cat "$T/lint")"
grep -q '^jumpstarter_exporter_up{exporter="lab1"} 1$' "$T/ctl.prom" || fail "lab1 not up: $(cat "$T/ctl.prom")"
grep -q '^jumpstarter_device_available{exporter="lab1",dut="dut1"} 1$' "$T/ctl.prom" || fail "dut1 not available"
grep -q '^jumpstarter_token_expiry_timestamp_seconds{kind="client",name="alice"} [0-9]' "$T/ctl.prom" ||
        fail "no token expiry for alice"
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$T/exp.prom" || fail "GET /metrics on the exporter: $(tail "$LOG")"
promtool check metrics < "$T/exp.prom" > "$T/lint" 2>&1 || fail "promtool on the exporter: $(cat "$T/lint")"
for m in jumpstarter_exporter_uptime_seconds 'jumpstarter_host_cpu_seconds_total{mode="idle"}' \
         jumpstarter_host_memory_available_bytes 'jumpstarter_dut_leased{dut="dut1"} 0' jumpstarter_exporter_linked; do
        grep -qF "$m" "$T/exp.prom" || fail "exporter /metrics lacks $m: $(cat "$T/exp.prom")"
done
# Only /metrics is public on the exporter's listener.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/v1/leases")" = 404 ] || fail "other paths"

# --- leases: the team from alice's label, from bob's request -------------------------------------------
as "$T/alice.yaml" lease create --name la --selector model=widget --duration 10m >/dev/null || fail "lease la"
curl -sf "http://127.0.0.1:$MPORT/metrics" | grep -q '^jumpstarter_dut_leased{dut="dut1"} 1$' ||
        wait_for sh -c "curl -sf http://127.0.0.1:$MPORT/metrics | grep -q '^jumpstarter_dut_leased{dut=\"dut1\"} 1\$'" ||
        fail "the exporter does not show dut1 leased"
echo on > "$MNT/dut1/power" 2>/dev/null || true
sleep 2 # a lease that holds its DUT for a while: data, not an assertion
as "$T/alice.yaml" lease release la >/dev/null || fail "release la"
as "$T/bob.yaml" lease create --name lb --selector model=widget --duration 10m --meta team=release \
        >/dev/null || fail "lease lb"
sleep 1
as "$T/bob.yaml" lease release lb >/dev/null || fail "release lb"
as "$T/bob.yaml" lease create --name lc --selector model=widget --duration 10m >/dev/null || fail "lease lc"
sleep 1
as "$T/bob.yaml" lease release lc >/dev/null || fail "release lc"

# What each lease held, from the history (whole seconds, as the API shows them).
api "$ADMIN_TOKEN" GET "/leases?history=true" > "$T/history.json"
held() {
        $PY - "$T/history.json" "$1" <<'PY'
import datetime, json, sys
d = json.load(open(sys.argv[1]))
t = lambda s: int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp())
print(sum(t(l["end"]) - t(l["begin"]) for l in d["items"] if l["state"] == "ended" and l["begin"] and
          l["metadata"].get("team", "") == sys.argv[2]))
PY
}
PLATFORM=$(held platform) RELEASE=$(held release) QA=$(held qa)
[ "$PLATFORM" -ge 1 ] && [ "$RELEASE" -ge 0 ] || fail "unexpected history: $(cat "$T/history.json")"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); m={l["name"]: l["metadata"] for l in d["items"]}; assert m["la"] == {"team": "platform"} and m["lb"] == {"team": "release"} and m["lc"] == {"team": "qa"}, m' \
        "$T/history.json" || fail "lease teams"
out=$(as "$ADMIN" get leases --history)
echo "$out" | grep -q '^NAME .* METADATA  *TEAM$' || fail "no TEAM column: $out"
echo "$out" | grep -Eq '^la +alice +ended .* platform$' || fail "la's team in jmp get leases: $out"
# Journal fields of lease events (on stderr here: no journald).
grep -q 'Lease lb created by bob, team release' "$CTL_LOG" || fail "lease event log: $(tail "$CTL_LOG")"
grep -q 'Lease la of alice ended (Released) on lab1/dut1' "$CTL_LOG" || fail "lease end log: $(tail "$CTL_LOG")"

# The counters on /metrics are the history's.
counter() { curl -sf --cacert "$CERT" "$URL/metrics" | sed -n "s/^jumpstarter_lease_seconds_total{team=\"$1\",exporter=\"lab1\"} //p"; }
[ "$(counter platform)" = "$PLATFORM" ] || fail "lease seconds of platform: $(counter platform), history $PLATFORM"
[ "$(counter release)" = "$RELEASE" ] || fail "lease seconds of release: $(counter release), history $RELEASE"
curl -sf --cacert "$CERT" "$URL/metrics" > "$T/ctl.prom"
promtool check metrics < "$T/ctl.prom" > "$T/lint" 2>&1 || fail "promtool after leases: $(cat "$T/lint")"
grep -q '^jumpstarter_leases_ended_total{team="qa",reason="Released"} 1$' "$T/ctl.prom" || fail "ended_total: $(grep ended "$T/ctl.prom")"
grep -q '^jumpstarter_leases_created_total{team="platform"} 1$' "$T/ctl.prom" || fail "created_total"
grep -q '^jumpstarter_lease_wait_seconds_count 3$' "$T/ctl.prom" || fail "wait histogram: $(grep wait "$T/ctl.prom")"

# --- a controller restart keeps the counters (they come from the history) -----------------------------
stop_controller
start_controller
[ "$(counter platform)" = "$PLATFORM" ] || fail "lease seconds after a restart: $(counter platform), want $PLATFORM"
wait_for online || fail "lab1 did not come back"

# --- a real Prometheus scrapes the controller and the exporter ------------------------------------------
PPORT=$(free_port)
cat > "$T/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: jumpstarter-controller
    scheme: https
    tls_config:
      ca_file: $CERT
    static_configs:
      - targets: ["127.0.0.1:$PORT"]
  - job_name: jumpstarter-exporters
    static_configs:
      - targets: ["127.0.0.1:$MPORT"]
YAML
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom" --web.listen-address="127.0.0.1:$PPORT" \
        > "$T/prometheus.log" 2>&1 &
TEST_PIDS="${TEST_PIDS:-} $!"
promql() { curl -sf --data-urlencode "query=$1" "http://127.0.0.1:$PPORT/api/v1/query"; }
# value QUERY [LABEL VALUE]: the value of the one series (with that label value).
value() {
        promql "$1" | $PY -c 'import json, sys
d = json.load(sys.stdin)["data"]["result"]
k = sys.argv[1:]
r = [x["value"][1] for x in d if not k or x["metric"].get(k[0]) == k[1]]
print(r[0] if len(r) == 1 else "")' "${@:2}"
}
both_up() { [ "$(value 'sum(up{job=~"jumpstarter-.*"})')" = 2 ]; }
wait_long both_up || fail "Prometheus does not scrape both: $(promql up) $(tail "$T/prometheus.log")"
by_team() { [ "$(value 'sum by (team) (jumpstarter_lease_seconds_total)' team "$1")" = "$2" ]; }
wait_long by_team platform "$PLATFORM" || fail "PromQL platform: $(promql 'sum by (team) (jumpstarter_lease_seconds_total)')"
wait_long by_team release "$RELEASE" || fail "PromQL release"
wait_long by_team qa "$QA" || fail "PromQL qa"
[ -n "$(value 'jumpstarter_exporter_uptime_seconds')" ] || fail "no exporter uptime in Prometheus"

# --- the usage report ---------------------------------------------------------------------------------
TODAY=$(date -u +%F) TOMORROW=$(date -u -d tomorrow +%F)
as "$ADMIN" admin usage --from "$TODAY" --to "$TOMORROW" -o json > "$T/usage.json" || fail "admin usage"
$PY - "$T/usage.json" "$PLATFORM" "$RELEASE" "$QA" <<'PY' || fail "usage by team: $(cat "$T/usage.json")"
import json, sys
d = json.load(open(sys.argv[1]))
g = {x["group"]: x for x in d["items"]}
assert d["by"] == "team", d
for team, want in zip(["platform", "release", "qa"], sys.argv[2:]):
    assert g[team]["deviceSeconds"] == int(want) and g[team]["leases"] == 1, (team, g[team], want)
assert d["total"]["leases"] == 3 and d["total"]["deviceSeconds"] == sum(map(int, sys.argv[2:])), d["total"]
PY
as "$ADMIN" admin usage --from "$TODAY" --to "$TOMORROW" --by client -o csv > "$T/usage.csv" || fail "usage csv"
head -1 "$T/usage.csv" | grep -qx 'client,device_seconds,device_hours,leases,wait_seconds,unserved' || fail "csv header"
grep -q "^alice,$PLATFORM," "$T/usage.csv" || fail "alice in csv: $(cat "$T/usage.csv")"
grep -q "^bob,$((RELEASE + QA)),.*,2,0,0$" "$T/usage.csv" || fail "bob in csv: $(cat "$T/usage.csv")"
as "$ADMIN" admin usage --from "$TODAY" --to "$TOMORROW" --by exporter | grep -Eq '^lab1 +[0-9.]+ +3 ' ||
        fail "usage table by exporter"
# Yesterday had none of it; a client is no admin.
as "$ADMIN" admin usage --from "$(date -u -d yesterday +%F)" --to "$TODAY" -o json |
        $PY -c 'import json,sys; assert json.load(sys.stdin)["items"] == []' || fail "usage of yesterday"
expect_error "Forbidden" as "$T/alice.yaml" admin usage --from "$TODAY" --to "$TOMORROW"

# --- bad --from/--to are refused ------------------------------------------------------------------------
expect_error "--from '2026-13-01' is not a date" as "$ADMIN" admin usage --from 2026-13-01 --to 2026-12-01
expect_error "--to 'yesterday' is not a date" as "$ADMIN" admin usage --from 2026-11-01 --to yesterday
expect_error "--from '2026-02-30' is not a date" as "$ADMIN" admin usage --from 2026-02-30 --to 2026-12-01
expect_error "must be before --to" as "$ADMIN" admin usage --from 2026-12-01 --to 2026-11-01
expect_error "needs --from and --to" as "$ADMIN" admin usage --from 2026-11-01
expect_error "use team, client or exporter" as "$ADMIN" admin usage --from 2026-11-01 --to 2026-12-01 --by dut
# And at the API.
api "$ADMIN_TOKEN" GET "/admin/usage?from=2026-11-31&to=2026-12-01" > /dev/null
[ "$(cat "$T/status")" = 400 ] && grep -q '"BadRequest"' "$T/body" && grep -q 'from=' "$T/body" || fail "API bad from: $(cat "$T/body")"
api "$ADMIN_TOKEN" GET "/admin/usage?from=2026-12-01&to=2026-11-01" > /dev/null
[ "$(cat "$T/status")" = 400 ] || fail "API from after to: $(cat "$T/body")"
api "$ADMIN_TOKEN" GET "/admin/usage?from=2026-11-01&to=2026-12-01&by=dut" > /dev/null
[ "$(cat "$T/status")" = 400 ] || fail "API bad by: $(cat "$T/body")"

# --- history.retention drops old leases from the history, not from the counters ----------------------------
stop_controller
write_controller_config 'history:
  retention: 1s'
start_controller
ended_in_history() { api "$ADMIN_TOKEN" GET "/leases?history=true" | json 'len([l for l in d["items"] if l["state"] == "ended"])'; }
no_history() { [ "$(ended_in_history)" = 0 ]; }
wait_for no_history || fail "history.retention kept the ended leases: $(cat "$T/body")"
grep -q 'Dropped lease history from before' "$CTL_LOG" || fail "no retention in the log: $(tail "$CTL_LOG")"
[ "$(counter platform)" = "$PLATFORM" ] || fail "lease seconds after retention: $(counter platform), want $PLATFORM"
stop_controller
start_controller
[ "$(counter platform)" = "$PLATFORM" ] || fail "lease seconds after retention and a restart: $(counter platform)"
[ "$(counter release)" = "$RELEASE" ] || fail "lease seconds of release after retention and a restart"

# --- history.retention is checked at start ---------------------------------------------------------------
write_controller_config 'history:
  retention: soon'
"$JUMPSTARTERD" --config "$T/controller.yaml" > "$T/bad.log" 2>&1 && fail "a bad history.retention was accepted"
grep -q 'history.retention: expected a duration' "$T/bad.log" || fail "history.retention error: $(cat "$T/bad.log")"
echo "metrics: OK"
