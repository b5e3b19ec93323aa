#!/usr/bin/env bash
# wait-apt.sh: wait, before any change, until the host is ready for
# packages: cloud-init has finished the first boot and no other apt or dpkg
# run (apt-daily, unattended-upgrades on a fresh host) holds the dpkg locks
# or apt's lists and archives locks. Runs alone
# ahead of the steps that run while packages install, so a lock held past
# the limit stops the run with nothing changed. Changes nothing.
# Inputs: CLOUD_INIT_TIMEOUT, APT_LOCK_TIMEOUT (seconds).

wait_for_cloud_init
wait_for_apt_locks
