#!/usr/bin/env bash
# Installs what the local stack needs and the machine lacks: Java 17+, Maven, the PostgreSQL
# server binaries, Python 3.11 venv support, Chromium (the web UI's browser tests), wrk (the
# benchmarks' load generator) and openssh-client (the witness's key agent). Uses apt-get when
# run as root; otherwise it names the packages.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# Headless browser for the web UI's browser tests (driven by Playwright's Python API; Playwright's
# own browser downloads are never used).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# HTTP load generator for the benchmarks (bench/).
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# The litewitness witness keeps its key in an ssh-agent. It is built with Go >= 1.24, which this
# kind of machine has (Debian's golang-go is older); `custody stack up` says so if go is missing.
command -v ssh-agent >/dev/null 2>&1 || missing+=(openssh-client)

if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "Battery Custody needs: ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]})." >&2
  exit 1
fi
echo "installing ${missing[*]} …" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a system cluster; this project runs its own.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null 2>&1; then
  service postgresql stop >/dev/null 2>&1 || true
fi
