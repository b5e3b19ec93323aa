#!/usr/bin/env bash
# observe.sh: gather every fact the planner needs in one call. Prints
# key=value lines and changes nothing.

fact() { printf '%s=%s\n' "$1" "$2"; }

os_id=unknown os_version='' os_like=''
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  os_id=$(. /etc/os-release && echo "${ID:-unknown}")
  # shellcheck disable=SC1091
  os_version=$(. /etc/os-release && echo "${VERSION_ID:-}")
  # shellcheck disable=SC1091
  os_like=$(. /etc/os-release && echo "${ID_LIKE:-}")
fi
login_user=${SUDO_USER:-$(id -un)}
fact login_user "$login_user"
fact login_home "$(getent passwd "$login_user" | cut -d: -f6)"
fact os_id "$os_id"
fact os_version "$os_version"
fact os_like "$os_like"
fact arch "$(uname -m)"
fact apt "$(have apt-get && have dpkg && echo 1 || echo 0)"
audit=''
if have dpkg; then audit=$(dpkg --audit 2>/dev/null) || audit=''; fi
fact dpkg_pending "$([ -n "$audit" ] && echo 1 || echo 0)"
fact systemd "$(uses_systemd && echo 1 || echo 0)"
fact cloud_init "$(have cloud-init && echo 1 || echo 0)"
fact curl "$(have curl && echo 1 || echo 0)"
fact mem_total "$(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)"

fact java_major "$(java_major)"

current=$(installed_version "$INSTALL_DIR")
fact kafka_current "$current"
if [ -n "$current" ] && [ -f "$INSTALL_DIR/current/.kafkaup-sha512" ]; then
  fact kafka_current_sha512 "$(cat "$INSTALL_DIR/current/.kafkaup-sha512")"
fi
fact kafka_user "$(id -u kafka >/dev/null 2>&1 && echo 1 || echo 0)"
dirs_ok=1
for d in "$DATA_DIR" "$LOG_DIR" "$CONFIG_DIR" "$STATE_DIR"; do [ -d "$d" ] || dirs_ok=0; done
if [ "$dirs_ok" = 1 ] && [ "$(stat -c %U "$DATA_DIR")" != kafka ]; then dirs_ok=0; fi
fact dirs_ok "$dirs_ok"

swap_dir=$(dirname "$SWAP_FILE")
fact swap_active "$(awk -v f="$SWAP_FILE" '$1 == f {found=1} END {print found ? 1 : 0}' /proc/swaps)"
fact swap_file_size "$(stat -c %s "$SWAP_FILE" 2>/dev/null || echo 0)"
fact swap_fstab "$(awk -v f="$SWAP_FILE" '$1 == f && $3 == "swap" {n++} END {print n + 0}' /etc/fstab 2>/dev/null || echo 0)"
fact swap_fs "$(stat -f -c %T "$swap_dir" 2>/dev/null || echo unknown)"
fact free_swap_dir "$(df -P -B1 "$swap_dir" 2>/dev/null | awk 'NR == 2 {print $4}')"
probe=$INSTALL_DIR
while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
fact free_install_dir "$(df -P -B1 "$probe" 2>/dev/null | awk 'NR == 2 {print $4}')"

if [ -f "$DATA_DIR/meta.properties" ]; then
  fact meta 1
  fact cluster_id "$(sed -n 's/^cluster\.id=//p' "$DATA_DIR/meta.properties")"
  fact node_id "$(sed -n 's/^node\.id=//p' "$DATA_DIR/meta.properties")"
  fact directory_id "$(sed -n 's/^directory\.id=//p' "$DATA_DIR/meta.properties")"
else
  fact meta 0
fi

for f in "${MANAGED_FILES[@]}"; do
  fact "file:$f" "$(sha256_of "$f")"
done

if uses_systemd; then
  enabled=$(systemctl is-enabled "$SERVICE" 2>/dev/null) || true
  active=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
  fact service_enabled "$([ "$enabled" = enabled ] && echo 1 || echo 0)"
  fact service_active "$([ "$active" = active ] && echo 1 || echo 0)"
  pid=$(systemctl show -p MainPID --value "$SERVICE" 2>/dev/null) || pid=0
  fact broker_pid "${pid:-0}"
else
  pids=$(broker_pids)
  pid=${pids%%$'\n'*}
  fact service_enabled 0
  fact service_active "$([ -n "$pid" ] && echo 1 || echo 0)"
  fact broker_pid "${pid:-0}"
fi
# A change is pending when the marker is newer than the running broker: a
# broker started after the last change (by a run that was cut off before it
# could clear the marker) already runs with it.
pending=0 marker=$(restart_marker)
if [ -f "$marker" ]; then
  pending=1
  if [ "${pid:-0}" != 0 ] && [ -d "/proc/$pid" ] &&
    [ "$(stat -c %Y "/proc/$pid")" -gt "$(stat -c %Y "$marker")" ]; then
    pending=0
  fi
fi
fact restart_pending "$pending"

# The head start begun at boot by create's user-data (head-start.sh): its
# state, everything it recorded (hs.KEY=VALUE), and its staged tarball.
fact now "$(epoch_now)"
fact head_start "$(head_start_state "$HEAD_START_DIR")"
if [ -f "$HEAD_START_DIR/status" ]; then
  sed 's/^/hs./' "$HEAD_START_DIR/status"
fi
if [ -f "$HEAD_START_DIR/kafka/$DIST_NAME.tgz" ]; then
  fact head_start_tarball "$HEAD_START_DIR/kafka/$DIST_NAME.tgz"
fi
