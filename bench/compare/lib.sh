# Shared helpers for bench/compare/run.sh and bench/smoke.sh.

# install_peers: installs nginx (with the stream module) and HAProxy from
# Debian if they are missing. Services are not started (policy-rc.d), so
# nothing listens outside the benchmark's own namespaces.
install_peers() {
  local need=()
  command -v nginx >/dev/null 2>&1 || need+=(nginx)
  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
  command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
  [ ${#need[@]} = 0 ] && return 0
  echo "bench/compare: installing ${need[*]} with apt-get (peers for the comparison; ci/setup does not install them)"
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/tmp/bench-apt.log 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update >>/tmp/bench-apt.log 2>&1 &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/bench-apt.log 2>&1; }
  local rc=$?
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || { echo "bench/compare: apt-get install failed, see /tmp/bench-apt.log"; return 1; }
}
