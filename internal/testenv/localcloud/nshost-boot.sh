# nshost-boot.sh: what stands in for cloud-init on a namespace host. The
# local cloud runs it as root over SSH right after sshd is up, with
#   LC_USER      the default user to make (ubuntu)
#   LC_KEYS      base64 of the key pair's public keys, one a line
#   LC_USERDATA  base64 of the user-data (empty after the first boot)
#   LC_FIRST     true on the instance's first boot
# and turns its stdout into the instance's console. Order as cloud-init's:
# a boothook user-data (init, as the user-data is read), users and keys
# (init), the user-data (final: scripts-user), then the host keys to the
# console (final: keys-to-console).
set -euo pipefail
dir=/var/lib/cloud/instance
if [ "$LC_FIRST" = true ]; then
  mkdir -p "$dir/scripts" "$dir/boothooks"
  printf '%s' "$LC_USERDATA" | base64 -d >"$dir/user-data.txt"
fi
# A boothook (#cloud-boothook, then the script) runs on every boot, before
# the users are made; cloud-init hands it INSTANCE_ID.
if [ -f "$dir/user-data.txt" ] && [ "$(head -c 15 "$dir/user-data.txt")" = '#cloud-boothook' ]; then
  tail -n +2 "$dir/user-data.txt" >"$dir/boothooks/part-001"
  chmod 0700 "$dir/boothooks/part-001"
  echo "localcloud-init: init: running the boothook"
  if INSTANCE_ID=$(hostname) "$dir/boothooks/part-001" </dev/null >>/var/log/cloud-init-output.log 2>&1; then
    echo "localcloud-init: boothook finished"
  else
    echo "localcloud-init: boothook failed with exit status $?"
  fi
fi
echo "localcloud-init: init: making user $LC_USER"
if ! id "$LC_USER" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash --groups adm,sudo "$LC_USER"
  usermod -p '*' "$LC_USER" # no password, but not locked (sshd refuses locked accounts)
fi
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$LC_USER" >/etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
home=$(getent passwd "$LC_USER" | cut -d: -f6)
install -d -m 0700 -o "$LC_USER" -g "$LC_USER" "$home/.ssh"
printf '%s' "$LC_KEYS" | base64 -d >"$home/.ssh/authorized_keys"
chown "$LC_USER:$LC_USER" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"

if [ "$LC_FIRST" = true ]; then
  script=""
  case "$(head -c 64 "$dir/user-data.txt")" in
    '#!'*)
      script="$dir/scripts/part-001"
      cp "$dir/user-data.txt" "$script"
      ;;
    '#cloud-config'*)
      script="$dir/scripts/runcmd"
      python3 - "$dir/user-data.txt" >"$script" <<'PY'
import shlex, sys, yaml
with open(sys.argv[1]) as f:
    cfg = yaml.safe_load(f) or {}
print("#!/bin/sh")
for c in cfg.get("runcmd") or []:
    print(c if isinstance(c, str) else shlex.join(str(x) for x in c))
skipped = sorted(k for k in cfg if k != "runcmd")
if skipped:
    print("localcloud-init: not run on a namespace host: cloud-config " + ", ".join(skipped), file=sys.stderr)
PY
      ;;
    '')
      echo "localcloud-init: no user-data"
      ;;
    '#cloud-boothook'*) ;; # ran above
    *)
      echo "localcloud-init: user-data not run on a namespace host (only #! scripts and #cloud-config runcmd are)"
      ;;
  esac
  if [ -n "$script" ]; then
    chmod 0700 "$script"
    echo "localcloud-init: final: running the user-data ($script), output in /var/log/cloud-init-output.log"
    if "$script" </dev/null >>/var/log/cloud-init-output.log 2>&1; then
      echo "localcloud-init: user-data finished"
    else
      echo "localcloud-init: user-data failed with exit status $?"
    fi
  fi
fi

echo "ec2: #############################################################"
echo "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----"
for f in /etc/ssh/ssh_host_*_key.pub; do
  echo "ec2: $(ssh-keygen -l -f "$f")"
done
echo "ec2: -----END SSH HOST KEY FINGERPRINTS-----"
echo "ec2: #############################################################"
echo "-----BEGIN SSH HOST KEY KEYS-----"
cat /etc/ssh/ssh_host_*_key.pub
echo "-----END SSH HOST KEY KEYS-----"
echo "Cloud-init v. localcloud finished at $(date -R). Datasource DataSourceNoCloud (namespace host)."
