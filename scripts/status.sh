#!/usr/bin/env bash
# status.sh: the broker's health as seen on the host, as key=value lines.
# Changes nothing. Inputs: SERVICE, INSTALL_DIR, DATA_DIR.

fact() { printf '%s=%s\n' "$1" "$2"; }

if uses_systemd; then
  fact systemd 1
  active=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
  fact service_state "${active:-unknown}"
  enabled=$(systemctl is-enabled "$SERVICE" 2>/dev/null) || true
  fact service_enabled "${enabled:-unknown}"
  restarts=$(systemctl show -p NRestarts --value "$SERVICE" 2>/dev/null) || restarts=
  fact restarts "${restarts:-0}"
  pid=$(systemctl show -p MainPID --value "$SERVICE" 2>/dev/null) || pid=0
else
  fact systemd 0
  pids=$(broker_pids)
  pid=${pids%%$'\n'*}
  fact service_state "$([ -n "$pid" ] && echo active || echo inactive)"
  fact service_enabled "no systemd"
  fact restarts 0
fi
pid=${pid:-0}
fact broker_pid "$pid"
if [ "$pid" != 0 ] && [ -r "/proc/$pid/cmdline" ]; then
  cmdline=$(tr '\0' '\n' <"/proc/$pid/cmdline")
  fact heap "$(printf '%s\n' "$cmdline" | sed -n 's/^-Xmx//p' | tail -n 1)"
  etimes=$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ') || etimes=
  fact uptime_seconds "${etimes:-0}"
  rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 * 1024}' "/proc/$pid/status" 2>/dev/null) || rss=
  fact rss_bytes "${rss:-0}"
  # The JVM's own counters (what jstat reads), for the heap in use: kafkaup
  # parses them, so the host needs no JDK tool.
  for perf in /tmp/hsperfdata_*/"$pid"; do
    if [ -r "$perf" ]; then
      fact hsperfdata "$(base64 -w0 "$perf")"
      break
    fi
  done
fi
current=$(installed_version "$INSTALL_DIR")
fact kafka_version "$current"
fact swap_total_bytes "$(awk 'NR > 1 {t += $3} END {printf "%.0f", t * 1024}' /proc/swaps)"
fact swap_used_bytes "$(awk 'NR > 1 {u += $4} END {printf "%.0f", u * 1024}' /proc/swaps)"
fact mem_available_bytes "$(awk '/^MemAvailable:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)"
if [ -d "$DATA_DIR" ]; then
  fact data_free_bytes "$(df -P -B1 "$DATA_DIR" | awk 'NR == 2 {print $4}')"
  fact data_used_bytes "$(du -sb "$DATA_DIR" 2>/dev/null | cut -f1)"
fi
if [ -f "$DATA_DIR/meta.properties" ]; then
  fact cluster_id "$(sed -n 's/^cluster\.id=//p' "$DATA_DIR/meta.properties")"
fi
