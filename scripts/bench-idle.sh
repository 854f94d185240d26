#!/usr/bin/env bash
# Measures the daemon (and the dashboard) at rest: RSS and CPU over an idle window.
# Usage: scripts/bench-idle.sh [SECONDS]   (default 60; builds the release binary)
# Starts the Workspace ONE simulator and a six-slot station on a temporary sysfs tree,
# waits until the cabinet is ready, then samples /proc/PID/{stat,status}. Everything
# started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
cargo build --release --quiet
bin=$PWD/target/release/badgedock
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$bin" uem-sim --listen 127.0.0.1:0 > "$work/sim.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do grep -q http "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
url=$(awk '{print $NF}' "$work/sim.out")
printf 'sim-client-secret-4west\n' > "$work/client-secret"
printf 'badge,username,display-name\nDEADBEEF,alice,Alice Martin\n' > "$work/badges.csv"
mkdir -p "$work/sys/bus/usb/devices"
i=0
for serial in 00008110000A1B2C3D4E801E 00008110001C2D3E4F5A602E 000080300012345678ABCDEF; do
  i=$((i+1)); d="$work/sys/bus/usb/devices/1-1.$i"; mkdir -p "$d"
  echo 05ac > "$d/idVendor"; echo 12a8 > "$d/idProduct"; echo "$serial" > "$d/serial"
done
cat > "$work/badgedock.toml" <<TOML
[station]
name = "idle bench"
state-dir = "$work/state"
control-socket = "$work/control.sock"
[uem]
base-url = "$url"
staging-user = "staging-4west"
[uem.auth]
kind = "oauth"
token-url = "$url/connect/token"
client-id = "badgedock-demo"
client-secret-file = "client-secret"
[dock]
sysfs-root = "$work/sys"
rescan-ms = 1000
slots = [ { label = "1", port = "1-1.1" }, { label = "2", port = "1-1.2" }, { label = "3", port = "1-1.3" },
          { label = "4", port = "1-1.4" }, { label = "5", port = "1-1.5" }, { label = "6", port = "1-1.6" } ]
[directory]
kind = "file"
path = "badges.csv"
TOML
RUST_LOG=warn "$bin" run --config "$work/badgedock.toml" 2>"$work/daemon.log" &
daemon=$!
pids+=($daemon)
for _ in $(seq 100); do "$bin" status --config "$work/badgedock.toml" 2>/dev/null | grep -q "3/6 phones ready" && break; sleep 0.1; done
dash=""
if command -v tmux >/dev/null; then
  tmux -L "bench-idle-$$" new-session -d -s bench -x 160 -y 50 "$bin dashboard --config $work/badgedock.toml"
  sleep 1
  dash=$(tmux -L "bench-idle-$$" list-panes -t bench -F "#{pane_pid}")
fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
sleep 2
d0=$(ticks "$daemon"); [ -n "$dash" ] && b0=$(ticks "$dash")
sleep "$seconds"
d1=$(ticks "$daemon"); [ -n "$dash" ] && b1=$(ticks "$dash")
awk -v t=$((d1-d0)) -v hz="$hz" -v s="$seconds" -v r="$(rss "$daemon")" \
  'BEGIN { printf "daemon idle %ds: CPU %.3f%% of a core, RSS %.1f MB\n", s, 100*t/hz/s, r/1024 }'
if [ -n "$dash" ]; then
  awk -v t=$((b1-b0)) -v hz="$hz" -v s="$seconds" -v r="$(rss "$dash")" \
    'BEGIN { printf "dashboard idle %ds (160x50 in tmux): CPU %.3f%% of a core, RSS %.1f MB\n", s, 100*t/hz/s, r/1024 }'
  kill "$(tmux -L "bench-idle-$$" display-message -p "#{pid}")"
fi
